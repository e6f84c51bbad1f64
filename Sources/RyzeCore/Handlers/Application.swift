import Logging

/// The whole API as one function from request to response: routing, authentication, rate
/// limiting and CORS around the handlers. Shared by every request thread; holds no per-request state.
public final class Application: Sendable {
    public struct Configuration: Sendable {
        public var corsOrigins: Set<String>
        /// Bodies above this are refused with 413 (SPEC §4).
        public var maxBodyBytes: Int
        /// Where GET answers with the worker's status page; nil turns it off.
        public var statusPath: String?

        public init(corsOrigins: Set<String> = [], maxBodyBytes: Int = 64 * 1024, statusPath: String? = nil) {
            self.corsOrigins = corsOrigins
            self.maxBodyBytes = maxBodyBytes
            self.statusPath = statusPath
        }
    }

    enum Access: Sendable {
        case accountOrInstance
        case accountOnly
    }

    struct Endpoint: Sendable {
        var access: Access
        var isCreate: Bool
        /// The request is passed on its own, borrowed: copying it into the context would retain
        /// and release every one of its strings once more per request.
        var handle: @Sendable (Application, HTTPRequest, RequestContext) -> HTTPResponse
    }

    public let store: Store
    public let limiter: RateLimiter
    public let configuration: Configuration
    let logger: Logger
    let router: Router<Endpoint>
    let workerStatistics: WorkerStatistics?

    public init(store: Store, limiter: RateLimiter, configuration: Configuration, statistics: WorkerStatistics? = nil,
                logger: Logger = Logger(label: "ryze.api")) {
        self.store = store
        self.limiter = limiter
        self.configuration = configuration
        self.workerStatistics = statistics
        self.logger = logger
        var r = Router<Endpoint>()
        r.add("GET", "/api/events/getWebsocket/:instance", Endpoint(access: .accountOrInstance, isCreate: false) { $0.getWebSocket($2) })
        r.add("POST", "/api/events/websocket/:instance", Endpoint(access: .accountOrInstance, isCreate: false) { $0.saveWebSocket($1, $2) })
        r.add("POST", "/api/instance/new", Endpoint(access: .accountOnly, isCreate: true) { $0.createInstance($1, $2) })
        r.add("GET", "/api/instance/list", Endpoint(access: .accountOrInstance, isCreate: false) { $0.listInstances($1, $2) })
        r.add("DELETE", "/api/instance/delete/:instance", Endpoint(access: .accountOnly, isCreate: false) { $0.deleteInstance($2) })
        router = r
    }

    public func respond(to request: HTTPRequest) -> HTTPResponse {
        if let statusPath = configuration.statusPath, request.path == statusPath, request.method == "GET" {
            try? store.refresh()
            return statusPage(request)
        }
        var storeError: StoreError?
        do { try store.refresh() } catch {
            storeError = error
            logger.error("cannot follow the log", metadata: ["error": "\(error)"])
        }
        let match = router.match(method: request.method, path: request.path)
        let token = TokenSource.token(in: request)
        let digest = token.map(TokenDigest.init(of:))
        let principal = digest.flatMap { d in store.read { $0.principal(for: d) } }

        let isCreate: Bool
        if case .found(let endpoint, _) = match { isCreate = endpoint.isCreate } else { isCreate = false }
        let bucket: RateLimiter.Bucket
        switch (principal, digest) {
        case (.account?, let d?) where isCreate: bucket = .create(d)
        case (_?, let d?): bucket = .token(d)
        default: bucket = .address(request.remoteAddress)
        }
        let origin = configuration.corsOrigins.isEmpty ? nil
            : request.headers[.origin].flatMap { configuration.corsOrigins.contains($0) ? $0 : nil }

        let decision = limiter.consume(bucket)
        var response: HTTPResponse
        if !decision.allowed {
            response = .error(.tooManyRequests, "Rate limit exceeded. Try again later.")
        } else if request.method == "OPTIONS" {
            response = preflight(match: match, origin: origin)
        } else {
            switch match {
            case .notFound:
                response = .error(.notFound, "Route not found")
            case .methodNotAllowed(let allowed):
                response = .error(.methodNotAllowed, "Method not allowed")
                response.headers.append(("Allow", (allowed + ["OPTIONS"]).joined(separator: ", ")))
            case .found(let endpoint, let parameters):
                if token == nil {
                    response = .error(.unauthorized, "Missing token in header, Authorization header, or query parameter")
                } else if let principal, !(endpoint.access == .accountOnly && principal.isInstance) {
                    let context = RequestContext(principal: principal, parameters: parameters, storeError: storeError)
                    response = endpoint.handle(self, request, context)
                } else {
                    response = .error(.unauthorized, "Invalid token")
                }
            }
        }
        response.rateLimit = RateLimitHeaders(limit: decision.limit, remaining: decision.remaining, reset: Int(decision.resetSeconds),
                                              retryAfter: decision.allowed ? nil : Int(decision.retryAfterSeconds ?? 1))
        if let origin {
            response.headers.append(("Access-Control-Allow-Origin", origin))
            response.headers.append(("Access-Control-Expose-Headers", "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After"))
            response.headers.append(("Vary", "Origin"))
        }
        return response
    }

    /// An allowed origin gets the CORS answer on any path; anyone else gets a plain OPTIONS
    /// answer for a known path and 404 for an unknown one.
    private func preflight(match: Router<Endpoint>.Match, origin: String?) -> HTTPResponse {
        if origin != nil {
            return HTTPResponse(status: .noContent, headers: [
                ("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS"),
                ("Access-Control-Allow-Headers", "Content-Type, Authorization, token"),
                ("Access-Control-Max-Age", "600"),
            ])
        }
        switch match {
        case .notFound:
            return .error(.notFound, "Route not found")
        case .methodNotAllowed(let allowed):
            return HTTPResponse(status: .noContent, headers: [("Allow", (allowed + ["OPTIONS"]).joined(separator: ", "))])
        case .found:
            return HTTPResponse(status: .noContent, headers: [("Allow", "OPTIONS")])
        }
    }
}

struct RequestContext {
    var principal: State.Principal
    var parameters: Router<Application.Endpoint>.Parameters
    var storeError: StoreError?
}

/// A refusal decided inside a store write: the response to send, nothing appended.
struct Refusal: Error {
    var response: HTTPResponse
}

extension State.Principal {
    var isInstance: Bool {
        if case .instance = self { return true }
        return false
    }
}
