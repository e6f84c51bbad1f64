#if canImport(Glibc)
import Glibc
#endif

/// Turns SIGTERM and SIGINT into a call, on a thread of its own (sigwait): nothing runs in a
/// signal handler. Call `install` before any other thread starts, so that every thread inherits
/// the blocked mask and the signals reach only the waiting thread. SIGHUP and SIGPIPE are
/// ignored (a closed connection must not kill the deliverer).
public enum StopSignals {
    public static func install(_ onSignal: @escaping @Sendable (Int32) -> Void) {
        signal(SIGPIPE, SIG_IGN)
        signal(SIGHUP, SIG_IGN)
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        let blocked = set
        startThread {
            var set = blocked
            while true {
                var signal: Int32 = 0
                if sigwait(&set, &signal) == 0 { onSignal(signal) }
            }
        }
    }
}
