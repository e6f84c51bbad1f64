extension Application {
    /// GET /api/events/getWebsocket/:instance
    func getWebSocket(_ context: RequestContext) throws(APIError) -> HTTPResponse {
        let instance = try resolveInstance(context)
        guard let config = instance.websocket else { throw .refused(.notFound, "WebSocket not configured for this instance") }
        return HTTPResponse.json(.ok, body: WebSocketConfig.successBody(message: "WebSocket configuration retrieved", config: config))
    }

    /// POST /api/events/websocket/:instance — replaces the configuration, never merges.
    /// Disabling an enabled configuration also closes the instance's open connections (issue 12,
    /// beyond SPEC §6.2's "stops new events"): the channel is closed once the change is durable,
    /// and the instance moves to a channel of the next `streamEpoch` in the same record, so that
    /// re-enabling never reuses a closed channel (see `StreamChannel`).
    func saveWebSocket(_ request: HTTPRequest, _ context: RequestContext) throws(APIError) -> HTTPResponse {
        _ = try resolveInstance(context)
        guard let config = WebSocketConfig.parse(body: try jsonBody(request)) else { throw .invalidBody }
        let (saved, closing) = try write(context) { state throws(APIError) -> (LogRecord?, (WebSocketConfig, String?)) in
            // Checked again under the write lock: the instance may have gone meanwhile.
            let instance = try resolveInstance(context, in: state)
            let saved = LogRecord.websocketSaved(account: instance.account, name: instance.name, websocket: config)
            guard instance.websocket?.enabled == true, !config.enabled else { return (saved, (config, nil)) }
            let next = instance.streamEpoch &+ 1
            return (.batch([saved, .streamClosed(account: instance.account, name: instance.name, epoch: next)]),
                    (config, StreamChannel.id(of: instance)))
        }
        if let closing { stream?.close(channel: closing) }
        return HTTPResponse.json(.ok, body: WebSocketConfig.successBody(message: "WebSocket configuration saved", config: saved))
    }
}
