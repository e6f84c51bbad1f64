import Atomics
import CFastCGI
import Logging
import RyzeCore
#if canImport(Glibc)
import Glibc
#endif

/// The libfcgi worker loop: N threads, one `FCGX_Request` each, turning FastCGI requests into
/// `HTTPRequest`s and `HTTPResponse`s back into FastCGI output. Nothing API-specific lives here.
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
    private var listenFD: Int32 = 0
    private var listenIsInet = false
    // UnsafeAtomic, not ManagedAtomic: ManagedAtomic finds its storage through the class's runtime
    // metadata on every access, a generic-metadata lookup that showed up in request-path profiles.
    private let stopping = UnsafeAtomic<Bool>.create(false)
    private let finishedThreads = UnsafeAtomic<Int>.create(0)
    private let recycling = UnsafeAtomic<Bool>.create(false)
    fileprivate var workers: [Worker] = []

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

    /// Serves until SIGTERM, SIGINT, SIGQUIT, SIGUSR1 or SIGUSR2, then lets in-flight requests
    /// finish and returns.
    public func run() throws {
        let stopSignals: [Int32] = [SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGHUP]
        var set = sigset_t()
        sigemptyset(&set)
        for s in stopSignals { sigaddset(&set, s) }
        // Blocked here, inherited by every thread: only the sigtimedwait below ever sees them.
        pthread_sigmask(SIG_BLOCK, &set, nil)
        signal(SIGPIPE, SIG_IGN)
        // A file-size limit should fail the write (EFBIG, answered with a 500), not kill the worker.
        signal(SIGXFSZ, SIG_IGN)
        installWakeHandler()

        guard FCGX_Init() == 0 else { throw Failure.noSocket("FCGX_Init failed") }
        listenFD = try openListenSocket()
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(listenFD, $0, &length) } }
        listenIsInet = address.ss_family == sa_family_t(AF_INET) || address.ss_family == sa_family_t(AF_INET6)

        for index in 0..<max(1, configuration.threads) {
            let worker = Worker(server: self, index: index)
            workers.append(worker)
            worker.start()
        }
        logger.info("serving", metadata: ["threads": "\(workers.count)", "listen": "\(configuration.listen ?? "fd 0")"])

        var timeout = timespec(tv_sec: 0, tv_nsec: 200_000_000)
        while true {
            let sig = sigtimedwait(&set, nil, &timeout)
            if sig == SIGHUP { continue }
            if sig > 0 {
                logger.info("stopping", metadata: ["signal": "\(sig)", "requests_served": "\(statistics.requestsServed)"])
                break
            }
            if finishedThreads.load(ordering: .acquiring) == workers.count { break }
        }
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

    private func openListenSocket() throws -> Int32 {
        guard let listen = configuration.listen else {
            var st = stat()
            guard fstat(0, &st) == 0, (st.st_mode & S_IFMT) == S_IFSOCK else {
                throw Failure.noSocket("no FastCGI socket on fd 0: start under spawn-fcgi or multiwatch, or pass --listen unix:PATH or --listen HOST:PORT")
            }
            return 0
        }
        let target: String
        if listen.hasPrefix("unix:") {
            target = String(listen.dropFirst(5))
            unlink(target)
        } else {
            target = listen
        }
        let fd = FCGX_OpenSocket(target, 1024)
        guard fd >= 0 else { throw Failure.noSocket("cannot listen on \(listen): \(String(cString: strerror(errno)))") }
        if listen.hasPrefix("unix:") {
            // nginx's workers run as another user; guard the socket with its directory's mode.
            chmod(target, 0o666)
        }
        return fd
    }

    fileprivate func threadMain(_ worker: Worker) {
        defer { finishedThreads.wrappingIncrement(ordering: .releasing) }
        var request = FCGX_Request()
        // No listen socket for libfcgi: this loop accepts, so that it can put a read timeout on
        // each connection and be woken from accept() on stop. libfcgi reads from the fd we hand it
        // in ipcFd, and returns an error instead of accepting by itself after a broken request.
        guard FCGX_InitRequest(&request, -1, 0) == 0 else {
            logger.error("FCGX_InitRequest failed")
            return
        }
        defer { FCGX_Free(&request, 1) }
        while !stopping.load(ordering: .acquiring) {
            if request.ipcFd < 0 {
                // Only accept() is interrupted on stop: a request already on its way is served.
                worker.idle.store(true, ordering: .releasing)
                let fd = stopping.load(ordering: .acquiring) ? -1 : acceptConnection()
                worker.idle.store(false, ordering: .releasing)
                if fd < 0 { continue }
                request.ipcFd = fd
                // FCGX_Accept_r starts by finishing the previous request, which closes ipcFd
                // unless the connection is marked kept; the begin record then sets the real flag.
                request.keepConnection = 1
            }
            let rc = FCGX_Accept_r(&request)
            if rc < 0 {
                // A peer that sent no complete request in time, or broke the protocol; libfcgi
                // has closed its connection.
                continue
            }
            statistics.requestStarted(thread: worker.index)
            serve(&request)
            finish(&request)
            statistics.requestFinished(thread: worker.index)
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

    /// Ends the request. When nginx did not ask to keep the connection, closes it at once instead
    /// of letting libfcgi do it: libfcgi shuts down its side and then waits in poll() until nginx
    /// has read the answer and closed too, which costs three system calls and a sleep per request.
    /// A plain close is safe because serve() has read the request to the end of its stdin, so
    /// nothing unread is left to turn the close into a reset.
    private func finish(_ request: inout FCGX_Request) {
        let closeHere = request.keepConnection == 0
        request.keepConnection = 1
        FCGX_Finish_r(&request)
        // libfcgi closed it itself (and set -1) if writing the answer failed.
        if closeHere && request.ipcFd >= 0 {
            close(request.ipcFd)
            request.ipcFd = -1
        }
    }

    /// One connection from the listen socket, or -1 (interrupted by a stop, or a passing error).
    private func acceptConnection() -> Int32 {
        let fd = accept(listenFD, nil, nil)
        if fd < 0 {
            switch errno {
            case EINTR, EAGAIN, ECONNABORTED, EPROTO: break
            default:
                logger.warning("accept failed", metadata: ["error": "\(String(cString: strerror(errno)))"])
                usleep(10_000)
            }
            return -1
        }
        // One system call per connection, no more: no FD_CLOEXEC (this process never execs) and
        // no send timeout (nginx reads responses at once; the read side is what a peer can stall).
        if let seconds = configuration.readTimeoutSeconds {
            var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }
        if listenIsInet {
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        return fd
    }

    private func serve(_ raw: inout FCGX_Request) {
        let started = logsAccess ? monotonicSeconds() : 0   // the clock only for the access line
        guard let request = FastCGIServer.readRequest(&raw, maxBody: configuration.maxBodyBytes) else {
            logger.warning("request body did not arrive in time; connection dropped")
            FCGX_SetExitStatus(1, raw.out)
            return
        }
        let response = handler(request)
        FastCGIServer.writeResponse(response, to: raw.out)
        if response.status.code >= 500 {
            FCGX_PutS("ryze-events[\(getpid())]: \(request.method) \(request.path) -> \(response.status.code)\n", raw.err)
        }
        if logsAccess {
            // The path only: a token may travel in the query string.
            let micros = Int((monotonicSeconds() - started) * 1_000_000)
            accessLogger.info("\(request.method) \(request.path) \(response.status.code)", metadata: ["duration_us": "\(micros)"])
        }
    }

    /// nil when the declared body did not arrive (the read timed out or the peer went away).
    /// Reads stdin to its end in every case, so that finish() may close the connection outright.
    static func readRequest(_ raw: inout FCGX_Request, maxBody: Int) -> HTTPRequest? {
        // Pointers into libfcgi's copies of the parameters: valid until finish().
        let parameters = RequestParameters(environment: raw.envp)
        let length = parameters.contentLength
        var body: [UInt8] = []
        var tooLarge = false
        if length > maxBody {
            tooLarge = true
            // Read and drop it: leaving it unread would make nginx see a broken connection.
            var sink = [UInt8](repeating: 0, count: 64 * 1024)
            while sink.withUnsafeMutableBytes({ FCGX_GetStr($0.baseAddress!.assumingMemoryBound(to: CChar.self), Int32($0.count), raw.in) }) > 0 {}
        } else if length > 0 {
            body = [UInt8](repeating: 0, count: length)
            var got = 0
            while got < length {
                let n = body.withUnsafeMutableBytes {
                    FCGX_GetStr(($0.baseAddress! + got).assumingMemoryBound(to: CChar.self), Int32(length - got), raw.in)
                }
                if n <= 0 { break }
                got += Int(n)
            }
            if got < length { return nil }
        }
        // The end-of-stdin record (usually already in libfcgi's buffer, so no system call).
        while FCGX_GetChar(raw.in) >= 0 {}
        return HTTPRequest(parameters: parameters, body: body, bodyTooLarge: tooLarge)
    }

    /// Straight into libfcgi's output buffer, piece by piece: FCGX_PutStr only copies until the
    /// buffer (8 KiB) is full, and everything goes out in one write at FCGX_Finish_r.
    static func writeResponse(_ response: HTTPResponse, to out: UnsafeMutablePointer<FCGX_Stream>!) {
        var sink = StreamSink(stream: out)
        response.writeHead(to: &sink)
        if !response.body.isEmpty {
            _ = response.body.withUnsafeBytes { FCGX_PutStr($0.baseAddress!.assumingMemoryBound(to: CChar.self), Int32($0.count), out) }
        }
    }

    /// The response head's pieces into a libfcgi output stream, each with one FCGX_PutStr from
    /// where it already lies: a literal's static bytes, a String's storage, digits on the stack.
    struct StreamSink: ResponseHeadSink {
        let stream: UnsafeMutablePointer<FCGX_Stream>!

        func write(_ literal: StaticString) {
            _ = UnsafeRawPointer(literal.utf8Start).withMemoryRebound(to: CChar.self, capacity: literal.utf8CodeUnitCount) {
                FCGX_PutStr($0, Int32(literal.utf8CodeUnitCount), stream)
            }
        }

        func write(_ string: String) {
            var s = string
            s.withUTF8 { bytes in
                guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
                _ = UnsafeRawPointer(base).withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                    FCGX_PutStr($0, Int32(bytes.count), stream)
                }
            }
        }

        func write(decimal value: Int) {
            DecimalDigits.withASCII(value) {
                _ = FCGX_PutStr($0.baseAddress!.assumingMemoryBound(to: CChar.self), Int32($0.count), stream)
            }
        }
    }
}

/// One request thread. `idle` is true while it waits in accept(), the only place a stop
/// signal may interrupt it.
fileprivate final class Worker: @unchecked Sendable {
    unowned let server: FastCGIServer
    let idle = UnsafeAtomic<Bool>.create(false)   // see FastCGIServer.stopping
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

    func wake() { pthread_kill(thread, SIGALRM) }
}

/// SIGALRM interrupts accept() (no SA_RESTART) and does nothing else.
private func installWakeHandler() {
    var action = sigaction()
    action.__sigaction_handler.sa_handler = { _ in }
    sigemptyset(&action.sa_mask)
    action.sa_flags = 0
    sigaction(SIGALRM, &action, nil)
}

private func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
