/// A route's value: who may call it, which bucket it is charged to, what it answers when the
/// store fails, and the handler.
struct Endpoint: Sendable {
    enum Access: Sendable {
        case accountOrInstance
        case accountOnly
    }

    /// The 500 of SPEC §4 for this endpoint. With `withCause`, `": <cause>"` follows, a short
    /// cause without paths (`StoreError.publicCause`).
    struct StoreFailure: Sendable {
        var message: String
        var withCause = false

        func text(for error: StoreError) -> String { withCause ? message + ": " + error.publicCause : message }
    }

    typealias Handler = @Sendable (Application, HTTPRequest, RequestContext) throws(APIError) -> HTTPResponse

    var access: Access
    /// Instance creation has a bucket of its own (SPEC §3).
    var isCreate = false
    var storeFailure: StoreFailure
    /// The request is passed on its own, borrowed: copying it into the context would retain and
    /// release every one of its strings once more per request.
    var handle: Handler
}

/// What a handler knows beyond the request: who calls, and the path's captures.
struct RequestContext {
    var principal: State.Principal
    /// The caller's token digest: writes check under the write lock that it still names `principal`.
    var digest: TokenDigest
    var parameters: Router<Endpoint>.Parameters
}
