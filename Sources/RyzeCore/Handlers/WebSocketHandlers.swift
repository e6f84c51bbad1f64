extension Application {
    /// GET /api/events/getWebsocket/:instance
    func getWebSocket(_ context: RequestContext) -> HTTPResponse {
        if let error = context.storeError {
            logger.error("cannot read the store", metadata: ["error": "\(error)"])
            return .error(.internalServerError, "Failed to get websocket configuration")
        }
        let resolved = store.read { resolveInstance(context, in: $0) }
        switch resolved {
        case .failure(let refusal):
            return refusal.response
        case .success(let instance):
            guard let config = instance.websocket else {
                return .error(.notFound, "WebSocket not configured for this instance")
            }
            return HTTPResponse.json(.ok, body: WebSocketConfig.successBody(message: "WebSocket configuration retrieved", config: config))
        }
    }

    /// POST /api/events/websocket/:instance — replaces the configuration, never merges.
    func saveWebSocket(_ request: HTTPRequest, _ context: RequestContext) -> HTTPResponse {
        if case .failure(let refusal) = store.read({ resolveInstance(context, in: $0) }) { return refusal.response }
        let body: JSONValue
        switch jsonBody(request) {
        case .failure(let refusal): return refusal.response
        case .success(let value): body = value
        }
        guard let config = WebSocketConfig.parse(body: body) else {
            return .error(.badRequest, "Invalid request body")
        }
        do {
            let saved = try store.write { state -> (LogRecord?, WebSocketConfig) in
                // Checked again under the write lock: the instance may have gone meanwhile.
                let instance = try resolveInstance(context, in: state).get()
                return (.websocketSaved(account: instance.account, name: instance.name, websocket: config), config)
            }
            return HTTPResponse.json(.ok, body: WebSocketConfig.successBody(message: "WebSocket configuration saved", config: saved))
        } catch let refusal as Refusal {
            return refusal.response
        } catch {
            logger.error("cannot save websocket configuration", metadata: ["error": "\(error)"])
            return .error(.internalServerError, "Failed to save websocket configuration")
        }
    }
}
