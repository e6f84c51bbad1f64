/// One cross-cutting step of answering a request, in the manner of Hummingbird's middleware:
/// it may answer by itself, or call `next` and change what comes back. Steps may not throw: each
/// answers in the contract's envelope itself.
protocol Middleware: Sendable {
    func handle(_ request: HTTPRequest, _ state: inout RequestState, next: (inout RequestState) -> HTTPResponse) -> HTTPResponse
}

/// What the steps learn about a request on its way through them.
struct RequestState {
    let match: Router<Endpoint>.Match
    /// The token from the first source that has one (SPEC §2), and its digest.
    var token: String?
    var digest: TokenDigest?
    /// Who the token belongs to in the current state; nil for no token or an invalid one.
    var principal: State.Principal?
    /// Set when the store could not catch up with the deployment: nothing it holds can be trusted.
    var storeError: StoreError?
    /// The request's `Origin` when it is one the deployment allows (CORS).
    var allowedOrigin: String?

    var endpoint: Endpoint? {
        if case .found(let endpoint, _) = match { return endpoint }
        return nil
    }
}

/// The steps in order, then the responder. Built once; holds no per-request state.
struct Pipeline: Sendable {
    let steps: [any Middleware]
    let responder: @Sendable (HTTPRequest, inout RequestState) -> HTTPResponse

    func respond(_ request: HTTPRequest, _ state: inout RequestState) -> HTTPResponse {
        run(0, request, &state)
    }

    private func run(_ index: Int, _ request: HTTPRequest, _ state: inout RequestState) -> HTTPResponse {
        guard index < steps.count else { return responder(request, &state) }
        return steps[index].handle(request, &state) { run(index + 1, request, &$0) }
    }
}
