/// A route's value: who may call it, which bucket it is charged to, what it answers when the
/// store fails, and the handler. A class: the steps of the pipeline look at it several times per
/// request, and handing a reference around costs one retain where the struct cost one for each
/// of its closure and strings.
final class Endpoint: Sendable {
    enum Access: Sendable {
        case accountOrInstance
        case accountOnly
        /// Publisher tokens only (SPEC §6.1); account and instance tokens get 401 `Invalid token`.
        case publisherOnly
        /// No token needed, and one that is sent is not looked at: the route's answer does not
        /// depend on who asks nor on the store (GET /api/openapi.yaml). Charged to the client
        /// network's bucket (`Bucket.anonymous`).
        case anyone

        func admits(_ principal: State.Principal) -> Bool {
            switch (self, principal) {
            case (.accountOrInstance, .account), (.accountOrInstance, .instance), (.accountOnly, .account), (.publisherOnly, .publisher):
                return true
            default:
                return false
            }
        }
    }

    /// SPEC §3: which bucket the route charges a valid token to.
    enum Bucket: Sendable {
        case general
        /// Instance creation: a bucket of its own per account token.
        case create
        /// Publishing: a bucket of its own per publisher token.
        case publish
        /// The client network's bucket, the one of requests without a valid token, whatever
        /// token is sent (README "The OpenAPI document").
        case anonymous
    }

    /// The 500 of SPEC §4 for this endpoint. With `withCause`, `": <cause>"` follows, a short
    /// cause without paths (`StoreError.publicCause`).
    struct StoreFailure: Sendable {
        var message: String
        var withCause = false

        func text(for error: StoreError) -> String { withCause ? message + ": " + error.publicCause : message }
    }

    typealias Handler = @Sendable (Application, HTTPRequest, RequestContext) throws(APIError) -> HTTPResponse
    /// A route of `Access.anyone`: no principal, no store, nothing that can fail.
    typealias PublicHandler = @Sendable (Application, HTTPRequest) -> HTTPResponse

    let access: Access
    let bucket: Bucket
    let storeFailure: StoreFailure
    /// The request is passed on its own, borrowed: copying it into the context would retain and
    /// release every one of its strings once more per request. Unused when `publicHandle` is set.
    let handle: Handler
    /// Set exactly when `access` is `.anyone`.
    let publicHandle: PublicHandler?

    init(access: Access, bucket: Bucket = .general, storeFailure: StoreFailure, handle: @escaping Handler) {
        precondition(access != .anyone, "a route open to anyone is made with init(anyone:)")
        self.access = access
        self.bucket = bucket
        self.storeFailure = storeFailure
        self.handle = handle
        self.publicHandle = nil
    }

    /// A route open to anyone, charged to the client network's bucket.
    init(anyone handle: @escaping PublicHandler) {
        access = .anyone
        bucket = .anonymous
        // Never answered: `RequireFreshState` lets these routes through (they read no state).
        storeFailure = StoreFailure(message: "Internal server error")
        self.handle = { _, _, _ throws(APIError) in throw .refused(.internalServerError, "Internal server error") }
        publicHandle = handle
    }
}

/// What a handler knows beyond the request: who calls, and the path's captures.
struct RequestContext {
    var principal: State.Principal
    /// The caller's token digest: writes check under the write lock that it still names `principal`.
    var digest: TokenDigest
    var parameters: Router<Endpoint>.Parameters
}
