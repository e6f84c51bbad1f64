#if canImport(Glibc)
import Glibc
#endif

/// The worker's signals, and what each may interrupt.
///
/// - The stop signals (TERM, INT, QUIT, USR1, USR2) and HUP are blocked in every thread: run()
///   blocks them before it starts any, and threads inherit the mask. So no handler ever runs for
///   them (libfcgi's own SIGTERM/SIGUSR1 handlers included), no system call of a request thread
///   returns EINTR because of them, and only run()'s sigtimedwait takes them.
/// - SIGALRM is the one signal a request thread receives: stop() sends it to threads marked idle,
///   that is waiting in accept(). Its handler does nothing and has no SA_RESTART, so accept()
///   returns EINTR and the thread sees `stopping`. It is blocked in every thread except inside
///   `wakeable`, around accept() alone: stop() may send it just after accept() returned (the
///   thread still marked idle), and it must then stay pending instead of turning the new
///   connection's first read into EINTR, which libfcgi treats as a broken request (nginx: 502).
///   A pending one runs its empty handler at the next `wakeable`, before accept() is entered;
///   stop() keeps sending while a thread is idle, so a thread that then blocks in accept() is
///   still woken.
/// - SIGPIPE and SIGXFSZ are ignored: a peer gone away, or a file-size limit, fails the write
///   (EPIPE; EFBIG, answered with a 500) instead of killing the worker.
enum Signals {
    /// Blocks the stop signals and HUP in the calling thread and every thread it starts after,
    /// ignores SIGPIPE and SIGXFSZ, and installs the SIGALRM wake handler. Returns the blocked set
    /// for `waitForStop`. Call before starting any thread.
    static func blockInEveryThread() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for s in [SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGHUP] { sigaddset(&set, s) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        blockWake()
        signal(SIGPIPE, SIG_IGN)
        signal(SIGXFSZ, SIG_IGN)
        installWakeHandler()
        return set
    }

    private static let wake: sigset_t = {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGALRM)
        return set
    }()

    /// Blocks SIGALRM in the calling thread (and the threads it starts after).
    static func blockWake() {
        var set = wake
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Runs `body` (accept(), nothing else) with SIGALRM unblocked in the calling thread.
    static func wakeable<T>(_ body: () -> T) -> T {
        var set = wake
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        defer { pthread_sigmask(SIG_BLOCK, &set, nil) }
        return body()
    }

    /// The SIGALRM handler: does nothing, and has no SA_RESTART so that accept() returns EINTR.
    static func installWakeHandler() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(SIGALRM, &action, nil)
    }
}

extension FastCGIServer {
    /// Returns on a stop signal, or once every thread has finished by itself (--max-requests).
    /// SIGHUP is taken and ignored.
    func waitForStop(_ stopSignals: sigset_t) {
        var set = stopSignals
        var timeout = timespec(tv_sec: 0, tv_nsec: 200_000_000)
        while true {
            let sig = sigtimedwait(&set, nil, &timeout)
            if sig == SIGHUP { continue }
            if sig > 0 {
                logger.info("stopping", metadata: ["signal": "\(sig)", "requests_served": "\(statistics.requestsServed)"])
                return
            }
            if finishedThreads.load(ordering: .acquiring) == workers.count { return }
        }
    }
}

extension Worker {
    /// Interrupts this thread's accept(); see `Signals`.
    func wake() { pthread_kill(thread, SIGALRM) }
}
