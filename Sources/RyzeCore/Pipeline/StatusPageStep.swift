/// `GET --status-path`: the worker's own status, before authentication and rate limiting (nginx
/// keeps the path local).
struct StatusPageStep: Middleware {
    let path: String
    unowned let application: Application

    func handle(_ request: HTTPRequest, _ state: inout RequestState, next: (inout RequestState) -> HTTPResponse) -> HTTPResponse {
        guard request.method == "GET", request.path == path else { return next(&state) }
        try? application.store.refresh()
        return application.statusPage(request)
    }
}
