import Atomics
import CFastCGI
import Logging
import RyzeCore
#if canImport(Glibc)
import Glibc
#endif

/// The libfcgi worker loop: N threads, one `FCGX_Request` each, turning FastCGI requests into
/// `HTTPRequest`s and `HTTPResponse`s back into FastCGI output. Nothing API-specific lives here.
///
/// This file holds the configuration and the life of the process (run, stop). Beside it:
/// `Signals.swift` (what stops it, what may interrupt what), `ListenSocket.swift` (the socket and
/// each accepted connection's options), `Worker.swift` (a request thread and its accept loop),
/// `Connection.swift` (the requests of one connection), `RequestReader.swift` and
/// `ResponseWriter.swift` (libfcgi's streams to RyzeCore's types and back).
public final class FastCGIServer: @unchecked Sendable {
    public struct Configuration: Sendable {
        /// nil: the socket handed over on fd 0 (spawn-fcgi, multiwatch). Else `unix:/path` or `host:port`.
        public var listen: String?
        public var threads: Int
        public var maxBodyBytes: Int
        /// How long in-flight requests may take to finish after a stop signal.
        public var shutdownGraceSeconds: Double
        /// Exit cleanly after this many requests, for the supervisor to replace the process.
        public var maxRequests: Int?
        /// Longest wait for any read from nginx (parameters, body, the next request on a kept
        /// connection); libfcgi has no timeout of its own. nil: wait forever.
        public var readTimeoutSeconds: Double?

        public init(listen: String? = nil, threads: Int = 8, maxBodyBytes: Int = 64 * 1024, shutdownGraceSeconds: Double = 30,
                    maxRequests: Int? = nil, readTimeoutSeconds: Double? = nil) {
            self.listen = listen
            self.threads = threads
            self.maxBodyBytes = maxBodyBytes
            self.shutdownGraceSeconds = shutdownGraceSeconds
            self.maxRequests = maxRequests
            self.readTimeoutSeconds = readTimeoutSeconds
        }
    }

    public enum Failure: Error, CustomStringConvertible {
        case noSocket(String)
        public var description: String {
            switch self { case .noSocket(let m): return m }
        }
    }

    let configuration: Configuration
    let handler: @Sendable (HTTPRequest) -> HTTPResponse
    let logger: Logger
    let accessLogger: Logger
    /// Read once: asking a Logger for its level goes through the handler's class on every call
    /// (a dynamic exclusivity check and an existential call), and the level never changes.
    let logsAccess: Bool
    public let statistics: WorkerStatistics
    /// Set by run() before it starts any thread (pthread_create orders the write before the
    /// threads' reads) and never changed after.
    var listenSocket = ListenSocket(fd: -1, isInet: false)
    // UnsafeAtomic, not ManagedAtomic: ManagedAtomic finds its storage through the class's runtime
    // metadata on every access, a generic-metadata lookup that showed up in request-path profiles.
    let stopping = UnsafeAtomic<Bool>.create(false)
    let finishedThreads = UnsafeAtomic<Int>.create(0)
    let recycling = UnsafeAtomic<Bool>.create(false)
    /// Filled by run() before it waits; read by run() and stop() only, on the main thread.
    var workers: [Worker] = []

    public init(configuration: Configuration, logger: Logger, statistics: WorkerStatistics? = nil,
                handler: @escaping @Sendable (HTTPRequest) -> HTTPResponse) {
        self.configuration = configuration
        self.logger = logger
        self.accessLogger = Logger(label: "ryze.access")
        self.logsAccess = accessLogger.logLevel <= .info
        self.statistics = statistics ?? WorkerStatistics(threads: configuration.threads)
        precondition(self.statistics.threads >= max(1, configuration.threads), "WorkerStatistics needs a slot per thread")
        self.handler = handler
    }

    deinit {
        stopping.destroy()
        finishedThreads.destroy()
        recycling.destroy()
    }

    /// FCGX_Init's result, called once per process: a second call racing the first would set
    /// libfcgi's globals up twice. (It also puts a no-op SIGPIPE handler in place.)
    static let libraryStatus: Int32 = FCGX_Init()

    /// Serves until SIGTERM, SIGINT, SIGQUIT, SIGUSR1 or SIGUSR2, then lets in-flight requests
    /// finish and returns.
    public func run() throws {
        let stopSignals = Signals.blockInEveryThread()
        guard FastCGIServer.libraryStatus == 0 else { throw Failure.noSocket("FCGX_Init failed") }
        listenSocket = try ListenSocket.open(configuration.listen)

        for index in 0..<max(1, configuration.threads) {
            let worker = Worker(server: self, index: index)
            workers.append(worker)
            worker.start()
        }
        logger.info("serving", metadata: ["threads": "\(workers.count)", "listen": "\(configuration.listen ?? "fd 0")"])
        waitForStop(stopSignals)
        stop()
    }

    /// Stop accepting, wake the threads blocked in accept(), wait for the busy ones.
    private func stop() {
        stopping.store(true, ordering: .releasing)
        let deadline = monotonicSeconds() + configuration.shutdownGraceSeconds
        while finishedThreads.load(ordering: .acquiring) < workers.count && monotonicSeconds() < deadline {
            // Repeated: a thread may be just about to enter accept() when the first signal lands.
            for w in workers where w.idle.load(ordering: .acquiring) { w.wake() }
            usleep(20_000)
        }
        let left = workers.count - finishedThreads.load(ordering: .acquiring)
        if left > 0 { logger.warning("exiting with requests still in flight", metadata: ["threads": "\(left)"]) }
        logger.info("stopped")
    }
}
