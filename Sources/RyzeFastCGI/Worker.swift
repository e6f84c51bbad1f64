import Atomics
import CFastCGI
#if canImport(Glibc)
import Glibc
#endif

/// One request thread. `idle` is true exactly while it may be in accept(), the only place a stop
/// signal may interrupt it (see `Signals`).
final class Worker: @unchecked Sendable {
    unowned let server: FastCGIServer
    let idle = UnsafeAtomic<Bool>.create(false)   // see FastCGIServer.stopping
    /// Written by start() before the thread runs; read by wake() on the main thread.
    var thread = pthread_t()

    /// This thread's slot in WorkerStatistics.
    let index: Int

    init(server: FastCGIServer, index: Int) {
        self.server = server
        self.index = index
    }

    deinit { idle.destroy() }

    func start() {
        let box = Unmanaged.passRetained(self).toOpaque()
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        pthread_attr_setstacksize(&attr, 1 << 20)
        let rc = pthread_create(&thread, &attr, { arg in
            let worker = Unmanaged<Worker>.fromOpaque(arg!).takeRetainedValue()
            worker.server.threadMain(worker)
            return nil
        }, box)
        pthread_attr_destroy(&attr)
        precondition(rc == 0, "pthread_create failed")
        // Never detached: the pthread_t stays valid for wake() until the process exits.
    }
}

extension FastCGIServer {
    /// A request thread: accept a connection, serve its requests one after the other until it
    /// closes, accept the next; stop between requests once `stopping` is set.
    func threadMain(_ worker: Worker) {
        defer { finishedThreads.wrappingIncrement(ordering: .releasing) }
        Signals.blockWake()   // already inherited from run(); stated here because reads rely on it
        var request = FCGX_Request()
        // No listen socket for libfcgi: this loop accepts, so that it can put a read timeout on
        // each connection and be woken from accept() on stop. libfcgi reads from the fd we hand it
        // in ipcFd, and returns an error instead of accepting by itself after a broken request.
        guard FCGX_InitRequest(&request, -1, 0) == 0 else {
            logger.error("FCGX_InitRequest failed")
            return
        }
        // Closes a kept connection still open when the thread stops.
        defer { FCGX_Free(&request, 1) }
        while !stopping.load(ordering: .acquiring) {
            if request.ipcFd < 0 {
                // Only accept() is interrupted on stop: a request already on its way is served.
                worker.idle.store(true, ordering: .releasing)
                let fd = stopping.load(ordering: .acquiring) ? -1 : acceptConnection()
                worker.idle.store(false, ordering: .releasing)
                if fd < 0 { continue }
                adopt(fd, into: &request)
            }
            guard serveNextRequest(&request, thread: worker.index) else { continue }
            if let max = configuration.maxRequests {
                let served = statistics.requestsServed
                if served >= max {
                    // Every thread that sees the limit stops; the first one asks for the exit.
                    if recycling.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
                        logger.info("reached --max-requests, exiting for the supervisor to replace this worker", metadata: ["requests_served": "\(served)"])
                        kill(getpid(), SIGTERM)   // picked up by run()'s sigtimedwait like an operator's stop
                    }
                    break
                }
            }
        }
    }
}
