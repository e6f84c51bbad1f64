import Logging

/// Catches up with what other processes wrote before anything reads the state. A failure is kept
/// in the request state, and `RequireFreshState` answers with the route's 500.
struct FollowStore: Middleware {
    let store: any StateStore
    let logger: Logger

    func handle(_ request: HTTPRequest, _ state: inout RequestState, next: (HTTPRequest, inout RequestState) -> HTTPResponse) -> HTTPResponse {
        do {
            try store.refresh()
        } catch {
            state.storeError = error
            logger.error("cannot follow the store", metadata: ["error": "\(error)"])
        }
        return next(request, &state)
    }
}

/// Every route refuses to serve from a state that could not catch up: authentication itself
/// reads it, and a revocation must take effect at once (SPEC §2). The route's own 500 answers,
/// or SPEC §7's 503 when a shared store (PostgreSQL) is out of reach. Routes open to anyone read
/// no state and pass.
struct RequireFreshState: Middleware {
    func handle(_ request: HTTPRequest, _ state: inout RequestState, next: (HTTPRequest, inout RequestState) -> HTTPResponse) -> HTTPResponse {
        if let error = state.storeError, let endpoint = state.endpoint, endpoint.access != .anyone {
            if error.isUnavailable { return .error(.serviceUnavailable, StoreError.unavailableMessage) }
            return .error(.internalServerError, endpoint.storeFailure.text(for: error))
        }
        return next(request, &state)
    }
}
