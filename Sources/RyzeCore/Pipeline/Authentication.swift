/// SPEC §2: finds the token (header, Bearer, query) and who owns it. Never refuses by itself:
/// the rate limiter needs to know the bucket first, and `Authorization` answers later.
struct Authentication: Middleware {
    let store: any StateStore
    let memo: TokenMemo

    func handle(_ request: HTTPRequest, _ state: inout RequestState, next: (HTTPRequest, inout RequestState) -> HTTPResponse) -> HTTPResponse {
        // A route open to anyone never looks at a token: none is hashed or looked up for it.
        if state.endpoint?.access == .anyone { return next(request, &state) }
        if let token = TokenSource.token(in: request) {
            var principal: State.Principal?
            let (digest, hit) = memo.digest(of: token) { d in
                principal = store.principal(for: d)
                return principal != nil
            }
            state.token = token
            state.digest = digest
            // A memo hit skipped the lookup above; it is made here, in the current state, so a
            // revocation takes effect at once.
            state.principal = hit ? store.principal(for: digest) : principal
        }
        return next(request, &state)
    }
}

/// Refuses what authentication found wanting: no token (401 with SPEC's message), an unknown
/// token, or a token of a kind the route does not admit (401 `Invalid token`): an instance
/// token on an account-only route, a publisher token anywhere but publishing, an account or
/// instance token on publishing.
struct Authorization: Middleware {
    func handle(_ request: HTTPRequest, _ state: inout RequestState, next: (HTTPRequest, inout RequestState) -> HTTPResponse) -> HTTPResponse {
        guard let endpoint = state.endpoint, endpoint.access != .anyone else { return next(request, &state) }
        if state.token == nil {
            return .error(.unauthorized, "Missing token in header, Authorization header, or query parameter")
        }
        guard let principal = state.principal, endpoint.access.admits(principal) else {
            return .error(.unauthorized, "Invalid token")
        }
        return next(request, &state)
    }
}
