extension Application {
    /// GET /api/events/getWebsocket/:instance
    func getWebSocket(_ context: RequestContext) throws(APIError) -> HTTPResponse {
        let instance = try resolveInstance(context)
        guard let config = instance.websocket else { throw .refused(.notFound, "WebSocket not configured for this instance") }
        return HTTPResponse.json(.ok, body: WebSocketConfig.successBody(message: "WebSocket configuration retrieved", config: config))
    }

    /// POST /api/events/websocket/:instance — replaces the configuration, never merges.
    func saveWebSocket(_ request: HTTPRequest, _ context: RequestContext) throws(APIError) -> HTTPResponse {
        _ = try resolveInstance(context)
        guard let config = WebSocketConfig.parse(body: try jsonBody(request)) else { throw .invalidBody }
        let saved = try write(context) { state throws(APIError) in
            // Checked again under the write lock: the instance may have gone meanwhile.
            let instance = try resolveInstance(context, in: state)
            return (.websocketSaved(account: instance.account, name: instance.name, websocket: config), config)
        }
        return HTTPResponse.json(.ok, body: WebSocketConfig.successBody(message: "WebSocket configuration saved", config: saved))
    }
}
