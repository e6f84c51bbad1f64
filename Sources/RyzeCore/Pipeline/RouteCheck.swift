/// 404 `Route not found` for an unknown path, 405 with `Allow` for a known path and another
/// method. Comes after rate limiting: probing paths costs a request too.
struct RouteCheck: Middleware {
    func handle(_ request: HTTPRequest, _ state: inout RequestState, next: (HTTPRequest, inout RequestState) -> HTTPResponse) -> HTTPResponse {
        switch state.match {
        case .found:
            return next(request, &state)
        case .notFound:
            return .error(.notFound, "Route not found")
        case .methodNotAllowed(let allowed):
            var response = HTTPResponse.error(.methodNotAllowed, "Method not allowed")
            response.headers.append(("Allow", RouteCheck.allow(allowed)))
            return response
        }
    }

    static func allow(_ methods: [String]) -> String { (methods + ["OPTIONS"]).joined(separator: ", ") }
}
