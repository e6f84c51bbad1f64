/// `GET --status-path`: the worker's own status, before authentication and rate limiting (nginx
/// keeps the path local). Always in the pipeline; with no path (no `--status-path`) it only
/// passes requests on.
struct StatusPageStep: Middleware {
    let path: String?
    unowned let application: Application

    func handle(_ request: HTTPRequest, _ state: inout RequestState, next: (HTTPRequest, inout RequestState) -> HTTPResponse) -> HTTPResponse {
        guard let path, request.method == "GET", request.path == path else { return next(request, &state) }
        try? application.store.refresh()
        return application.statusPage(request)
    }
}
