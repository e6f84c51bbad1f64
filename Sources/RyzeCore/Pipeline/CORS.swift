/// SPEC §4 "OPTIONS": answers to an allowed `Origin` carry `Access-Control-Allow-Origin` and
/// expose the rate-limit headers, whatever answered (a 429 included). With no origin
/// configured this step does nothing.
struct CORS: Middleware {
    let origins: Set<String>

    func handle(_ request: HTTPRequest, _ state: inout RequestState, next: (HTTPRequest, inout RequestState) -> HTTPResponse) -> HTTPResponse {
        guard !origins.isEmpty, let origin = request.headers[.origin], origins.contains(origin) else { return next(request, &state) }
        state.allowedOrigin = origin
        var response = next(request, &state)
        response.headers.append(("Access-Control-Allow-Origin", origin))
        response.headers.append(("Access-Control-Expose-Headers", "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After"))
        response.headers.append(("Vary", "Origin"))
        return response
    }
}

/// OPTIONS on any path: an allowed origin gets the CORS preflight answer; anyone else 204 with
/// `Allow` for a known path and 404 for an unknown one. After rate limiting, like any request.
struct Preflight: Middleware {
    func handle(_ request: HTTPRequest, _ state: inout RequestState, next: (HTTPRequest, inout RequestState) -> HTTPResponse) -> HTTPResponse {
        guard request.method == "OPTIONS" else { return next(request, &state) }
        if state.allowedOrigin != nil {
            return HTTPResponse(status: .noContent, headers: [
                ("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS"),
                ("Access-Control-Allow-Headers", "Content-Type, Authorization, token"),
                ("Access-Control-Max-Age", "600"),
            ])
        }
        switch state.match {
        case .notFound:
            return .error(.notFound, "Route not found")
        case .methodNotAllowed(let allowed):
            return HTTPResponse(status: .noContent, headers: [("Allow", RouteCheck.allow(allowed))])
        case .found:
            return HTTPResponse(status: .noContent, headers: [("Allow", "OPTIONS")])
        }
    }
}
