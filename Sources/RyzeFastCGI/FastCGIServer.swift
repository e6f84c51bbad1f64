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
        let p = Parameters(raw.envp)
        var path = "/"
        var queryInURI: UnsafePointer<CChar>?
        if let uri = p.requestURI {
            queryInURI = strchr(uri, Int32(UInt8(ascii: "?"))).map { UnsafePointer($0) + 1 }
            path = makeString(uri, queryInURI.map { $0 - 1 - uri } ?? strlen(uri))
        } else if let d = p.documentURI {
            path = String(cString: d)
        }
        // QUERY_STRING when nginx sends it (Debian's fastcgi_params), else what follows the `?`.
        let query = (p.queryString ?? queryInURI).map { String(cString: $0) } ?? ""
        let headers = HTTPHeaders(token: p.token.map { String(cString: $0) },
                                  authorization: p.authorization.map { String(cString: $0) },
                                  origin: p.origin.map { String(cString: $0) })
        let length = p.contentLength.map(decimalValue) ?? 0
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
        return HTTPRequest(method: p.method, path: path, query: query, headers: headers,
                           remoteAddress: p.remoteAddress.map { String(cString: $0) } ?? "", body: body, bodyTooLarge: tooLarge)
    }

    private static func makeString(_ start: UnsafePointer<CChar>, _ count: Int) -> String {
        String(decoding: UnsafeRawBufferPointer(start: start, count: count), as: UTF8.self)
    }

    /// CONTENT_LENGTH as nginx sends it (digits, or empty). Anything else counts as no body; a
    /// number too large for Int as a body too large.
    private static func decimalValue(_ s: UnsafePointer<CChar>) -> Int {
        var n = 0
        var p = s
        while p.pointee != 0 {
            let d = Int(p.pointee) - 48
            guard d >= 0 && d <= 9 else { return 0 }
            guard n <= (Int.max - d) / 10 else { return .max }
            n = n * 10 + d
            p += 1
        }
        return n
    }

    /// The parameters the API reads, picked out of libfcgi's `NAME=value` array in one pass
    /// (FCGX_GetParam would scan the whole array once per name). Values stay pointers into
    /// libfcgi's copies, valid until FCGX_Finish_r: only what the request uses becomes a String.
    struct Parameters {
        var method = "GET"
        var requestURI, documentURI, queryString, contentLength, remoteAddress: UnsafePointer<CChar>?
        var token, authorization, origin: UnsafePointer<CChar>?

        init(_ envp: FCGX_ParamArray?) {
            guard var entry = envp else { return }
            while let cString = entry.pointee {
                entry += 1
                let raw = UnsafeRawPointer(cString).assumingMemoryBound(to: UInt8.self)
                guard let eq = strchr(cString, Int32(UInt8(ascii: "="))) else { continue }
                let nameLength = UnsafePointer(eq) - UnsafePointer(cString)
                let value = UnsafePointer(eq) + 1
                func `is`(_ name: StaticString) -> Bool {
                    name.utf8CodeUnitCount == nameLength && memcmp(raw, name.utf8Start, nameLength) == 0
                }
                switch raw.pointee {
                case UInt8(ascii: "R"):
                    if `is`("REQUEST_METHOD") { method = Parameters.method(value) }
                    else if `is`("REQUEST_URI") { requestURI = value }
                    else if `is`("REMOTE_ADDR") { remoteAddress = value }
                case UInt8(ascii: "H"):
                    if `is`("HTTP_TOKEN") { token = value }
                    else if `is`("HTTP_AUTHORIZATION") { authorization = value }
                    else if `is`("HTTP_ORIGIN") { origin = value }
                case UInt8(ascii: "Q"):
                    if `is`("QUERY_STRING") { queryString = value }
                case UInt8(ascii: "C"):
                    if `is`("CONTENT_LENGTH") { contentLength = value }
                case UInt8(ascii: "D"):
                    if `is`("DOCUMENT_URI") { documentURI = value }
                default: break
                }
            }
        }

        /// The API's methods come back as literals (no bytes copied); anything else as sent.
        private static func method(_ value: UnsafePointer<CChar>) -> String {
            for known in ["GET", "POST", "DELETE", "OPTIONS"] as [StaticString] {
                if strcmp(value, UnsafeRawPointer(known.utf8Start).assumingMemoryBound(to: CChar.self)) == 0 {
                    return known.description
                }
            }
            return String(cString: value)
        }
    }

    /// Straight into libfcgi's output buffer, piece by piece: FCGX_PutStr only copies until the
    /// buffer (8 KiB) is full, and everything goes out in one write at FCGX_Finish_r.
    static func writeResponse(_ response: HTTPResponse, to out: UnsafeMutablePointer<FCGX_Stream>!) {
        putLiteral("Status: ", out)
        putDecimal(response.status.code, out)
        putLiteral(" ", out)
        put(response.status.reason, out)
        if let type = response.contentType {
            putLiteral("\r\nContent-Type: ", out)
            put(type, out)
        }
        if let r = response.rateLimit {
            if let retry = r.retryAfter {
                putLiteral("\r\nRetry-After: ", out)
                putDecimal(retry, out)
            }
            putLiteral("\r\nX-RateLimit-Limit: ", out)
            putDecimal(r.limit, out)
            putLiteral("\r\nX-RateLimit-Remaining: ", out)
            putDecimal(r.remaining, out)
            putLiteral("\r\nX-RateLimit-Reset: ", out)
            putDecimal(r.reset, out)
        }
        for (name, value) in response.headers {
            putLiteral("\r\n", out)
            put(name, out)
            putLiteral(": ", out)
            put(value, out)
        }
        if response.status.code != 204 {
            putLiteral("\r\nContent-Length: ", out)
            putDecimal(response.body.count, out)
        }
        putLiteral("\r\n\r\n", out)
        if !response.body.isEmpty {
            _ = response.body.withUnsafeBytes { FCGX_PutStr($0.baseAddress!.assumingMemoryBound(to: CChar.self), Int32($0.count), out) }
        }
    }

    private static func putLiteral(_ s: StaticString, _ out: UnsafeMutablePointer<FCGX_Stream>!) {
        _ = UnsafeRawPointer(s.utf8Start).withMemoryRebound(to: CChar.self, capacity: s.utf8CodeUnitCount) {
            FCGX_PutStr($0, Int32(s.utf8CodeUnitCount), out)
        }
    }

    private static func put(_ s: String, _ out: UnsafeMutablePointer<FCGX_Stream>!) {
        var s = s
        s.withUTF8 { bytes in
            guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
            _ = UnsafeRawPointer(base).withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                FCGX_PutStr($0, Int32(bytes.count), out)
            }
        }
    }

    private static func putDecimal(_ value: Int, _ out: UnsafeMutablePointer<FCGX_Stream>!) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)   // 24 bytes: room for any Int
        withUnsafeMutableBytes(of: &digits) { buffer in
            var n = value.magnitude
            var at = buffer.count
            repeat {
                at -= 1
                buffer[at] = UInt8(ascii: "0") + UInt8(n % 10)
                n /= 10
            } while n > 0
            if value < 0 { at -= 1; buffer[at] = UInt8(ascii: "-") }
            _ = FCGX_PutStr(buffer.baseAddress!.assumingMemoryBound(to: CChar.self) + at, Int32(buffer.count - at), out)
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
