import Atomics
import Logging

/// The whole API as one function from request to response: the route table and the pipeline of
/// cross-cutting steps around the handlers. Shared by every request thread; holds no
/// per-request state.
public final class Application: Sendable {
    public struct Configuration: Sendable {
        public var corsOrigins: Set<String>
        /// Bodies above this are refused with 413 (SPEC §4).
        public var maxBodyBytes: Int
        /// Where GET answers with the worker's status page; nil turns it off.
        public var statusPath: String?
        /// Browser origins allowed to open `/ws/:instance` (SPEC §6.2); a request without
        /// `Origin` is never refused for it.
        public var wsOrigins: Set<String>
        /// Put in every event's `instanceData.baseUrl` (SPEC §6).
        public var baseURL: String
        /// Publish bodies above this are refused with 413 (SPEC §6.1: 1 MiB by default).
        public var maxPublishBodyBytes: Int

        public init(corsOrigins: Set<String> = [], maxBodyBytes: Int = 64 * 1024, statusPath: String? = nil,
                    wsOrigins: Set<String> = [], baseURL: String = "", maxPublishBodyBytes: Int = 1 << 20) {
            self.corsOrigins = corsOrigins
            self.maxBodyBytes = maxBodyBytes
            self.statusPath = statusPath
            self.wsOrigins = wsOrigins
            self.baseURL = baseURL
            self.maxPublishBodyBytes = maxPublishBodyBytes
        }

        /// The largest body the adapter must read for any route.
        public var largestBodyBytes: Int { max(maxBodyBytes, maxPublishBodyBytes) }
    }

    public let store: any StateStore
    public let limiter: RateLimiter
    public let configuration: Configuration
    /// Seals and opens webhook secrets under the deployment key; nil only where no key was
    /// given (then the webhook endpoints answer their 500).
    let secrets: SecretBox?
    /// Where published events go (SPEC §6); nil: not configured (publishing answers its 500 /
    /// `"websocket": false`).
    let queue: (any EventQueue)?
    let stream: (any EventStream)?
    /// Events the fan-out did not take, in this process (SPEC §6.1: logged and counted).
    let streamFailures = UnsafeAtomic<Int>.create(0)
    let logger: Logger
    let router: Router<Endpoint>
    let workerStatistics: WorkerStatistics?
    /// The cross-cutting steps in the order they run, then `callHandler`.
    typealias Steps = Then<Then<Then<Then<Then<Then<Then<Then<StatusPageStep, FollowStore>, Authentication>, CORS>, RateLimiting>,
                                        Preflight>, RouteCheck>, RequireFreshState>, Authorization>
    /// Allocated before `self` exists and initialized at the end of `init` (the status step refers
    /// back to the application), never written again, freed in `deinit`: requests only read it,
    /// in place. (An optional `var` here was copied out on every request.)
    nonisolated(unsafe) private let steps: UnsafeMutablePointer<Steps>

    public init(store: any StateStore, limiter: RateLimiter, configuration: Configuration, secrets: SecretBox?,
                queue: (any EventQueue)? = nil, stream: (any EventStream)? = nil,
                statistics: WorkerStatistics? = nil, logger: Logger = Logger(label: "ryze.api")) {
        self.store = store
        self.secrets = secrets
        self.queue = queue
        self.stream = stream
        self.limiter = limiter
        self.configuration = configuration
        self.workerStatistics = statistics
        self.logger = logger
        router = Application.routes()
        steps = .allocate(capacity: 1)
        steps.initialize(to: StatusPageStep(path: configuration.statusPath, application: self)
            .then(FollowStore(store: store, logger: logger))
            .then(Authentication(store: store, memo: TokenMemo()))
            .then(CORS(origins: configuration.corsOrigins))
            .then(RateLimiting(limiter: limiter))
            .then(Preflight())
            .then(RouteCheck())
            .then(RequireFreshState())
            .then(Authorization()))
    }

    /// The route table: every endpoint of SPEC §4 with its access rule and its 500, and the
    /// OpenAPI document that describes them (openapi.yaml).
    static func routes() -> Router<Endpoint> {
        var r = Router<Endpoint>()
        r.add("GET", "/api/events/getWebsocket/:instance", Endpoint(
            access: .accountOrInstance, storeFailure: .init(message: "Failed to get websocket configuration")
        ) { app, _, context throws(APIError) in try app.getWebSocket(context) })
        r.add("POST", "/api/events/websocket/:instance", Endpoint(
            access: .accountOrInstance, storeFailure: .init(message: "Failed to save websocket configuration")
        ) { app, request, context throws(APIError) in try app.saveWebSocket(request, context) })
        r.add("POST", "/api/instance/new", Endpoint(
            access: .accountOnly, bucket: .create, storeFailure: .init(message: "Failed to create instance")
        ) { app, request, context throws(APIError) in try app.createInstance(request, context) })
        r.add("GET", "/api/instance/list", Endpoint(
            access: .accountOrInstance, storeFailure: .init(message: "Failed to list instances")
        ) { app, request, context throws(APIError) in try app.listInstances(request, context) })
        r.add("DELETE", "/api/instance/delete/:instance", Endpoint(
            access: .accountOnly, storeFailure: .init(message: "Failed to delete instance", withCause: true)
        ) { app, _, context throws(APIError) in try app.deleteInstance(context) })
        r.add("POST", "/api/events/webhook/:instance", Endpoint(
            access: .accountOrInstance, storeFailure: .init(message: "Failed to save webhook configuration")
        ) { app, request, context throws(APIError) in try app.saveWebhook(request, context) })
        let getWebhooks = Endpoint(access: .accountOrInstance, storeFailure: .init(message: "Failed to get webhook configuration")) {
            app, request, context throws(APIError) in try app.getWebhooks(request, context)
        }
        r.add("GET", "/api/events/webhook/:instance", getWebhooks)
        r.add("GET", "/api/events/getWebhook/:instance", getWebhooks)
        r.add("POST", "/api/events/publish/:instance", Endpoint(
            access: .publisherOnly, bucket: .publish, storeFailure: .init(message: "Failed to queue event")
        ) { app, request, context throws(APIError) in try app.publish(request, context) })
        r.add("DELETE", "/api/events/webhook/:instance", Endpoint(
            access: .accountOrInstance, storeFailure: .init(message: "Failed to delete webhook")
        ) { app, request, context throws(APIError) in try app.deleteWebhook(request, context) })
        r.add("GET", "/api/openapi.yaml", Endpoint(anyone: { _, _ in OpenAPIDocument.response() }))
        r.add("GET", "/ws/:instance", Endpoint(
            access: .accountOrInstance, storeFailure: .init(message: "Failed to get websocket configuration")
        ) { app, request, context throws(APIError) in try app.openStream(request, context) })
        return r
    }

    deinit {
        streamFailures.destroy()
        steps.deinitialize(count: 1)
        steps.deallocate()
    }

    public func respond(to request: HTTPRequest) -> HTTPResponse {
        var state = RequestState(match: router.match(method: request.method, path: request.path))
        return steps.pointee.handle(request, &state) { callHandler($0, $1) }
    }

    /// The end of the pipeline: the route's handler, and the one place its errors become answers.
    private func callHandler(_ request: HTTPRequest, _ state: RequestState) -> HTTPResponse {
        // The steps before guarantee a route, and a token and its principal unless the route is
        // open to anyone.
        if case .found(let endpoint, _) = state.match, let open = endpoint.publicHandle { return open(self, request) }
        guard case .found(let endpoint, let parameters) = state.match, let principal = state.principal, let digest = state.digest else {
            return .error(.internalServerError, "Internal server error")
        }
        do {
            return try endpoint.handle(self, request, RequestContext(principal: principal, digest: digest, parameters: parameters))
        } catch {
            switch error {
            case .refused(let status, let message):
                return .error(status, message)
            case .storeFailed(let storeError):
                logger.error("store failure", metadata: ["method": "\(request.method)", "path": "\(request.path)", "error": "\(storeError)"])
                if storeError.isUnavailable { return .error(.serviceUnavailable, StoreError.unavailableMessage) }
                return .error(.internalServerError, endpoint.storeFailure.text(for: storeError))
            }
        }
    }
}
