#if canImport(Glibc)
import Glibc
#endif

/// A detached pthread for the store's background work. Request threads belong to the adapter;
/// this is for work no request should wait for.
///
/// It takes no process signal: every signal but the synchronous faults is blocked in it from its
/// first instruction. A process-directed signal goes to a thread that does not block it, and
/// `serve` opens its store (so starts the compactor's thread) before it blocks its stop signals
/// and waits for them in the main thread; a SIGHUP or SIGTERM that arrived while the main thread
/// was between two sigtimedwait calls then landed here, where its default action ended the process
/// at once: no graceful stop, and SIGHUP (documented as ignored) killed the worker. Seen as a
/// flood of SIGHUP ending a worker after about 1,600 of them.
public enum BackgroundThread {
    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    public static func start(_ body: @escaping @Sendable () -> Void) {
        var thread = pthread_t()
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        // The new thread inherits the creator's mask: block around the creation, so that there
        // is no moment at which it could take a signal.
        var blocked = asyncSignals, previous = sigset_t()
        pthread_sigmask(SIG_BLOCK, &blocked, &previous)
        let rc = pthread_create(&thread, nil, { arg in
            Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
            return nil
        }, box)
        pthread_sigmask(SIG_SETMASK, &previous, nil)
        precondition(rc == 0, "pthread_create failed")
        pthread_detach(thread)
    }

    /// Every signal but those a thread raises on itself by faulting (blocking those would only
    /// make the kernel kill the process without a backtrace).
    static var asyncSignals: sigset_t {
        var set = sigset_t()
        sigfillset(&set)
        for s in [SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS] { sigdelset(&set, s) }
        return set
    }
}
