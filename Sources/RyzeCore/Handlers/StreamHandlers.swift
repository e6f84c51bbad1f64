/// The gate of the WebSocket stream (SPEC §6.2). nginx sends `GET /ws/:instance` here over
/// FastCGI before any upgrade: the pipeline has authenticated it and charged it to the token's
/// bucket, and a refusal goes back to the client as plain HTTP with the JSON envelope. A request
/// that may subscribe gets an empty answer whose `X-Accel-Redirect` hands the connection to
/// nginx's internal nchan location on the instance's channel, which makes the upgrade.
///
/// The channel is decided here, from the token's owner, never from the path alone: instance
/// names are unique only within an account, and two accounts' `shop` are two channels.
public enum StreamGate {
    /// nginx's internal subscriber location; its `nchan_channel_id` is the rest of the path.
    /// Must match the `location` in deploy/nginx-local.conf.template and nginx.conf.example.
    public static let internalLocation = "/__ryze_ws/"

    /// The `X-Accel-Redirect` target for a channel. Channels are `account.instance.incarnation`
    /// (`StreamChannel`), from `[A-Za-z0-9_.-]`: nothing in them needs escaping in a URI.
    public static func redirect(channel: String) -> String { internalLocation + channel }
}

extension Application {
    /// GET /ws/:instance (account or instance token).
    func openStream(_ request: HTTPRequest, _ context: RequestContext) throws(APIError) -> HTTPResponse {
        // Before the instance is looked up: a page on a foreign origin learns nothing about it.
        if let origin = request.headers[.origin], !configuration.wsOrigins.contains(origin) {
            throw .refused(.forbidden, "Origin not allowed")
        }
        let instance = try store.read { state throws(APIError) in try resolveInstance(context, in: state) }
        guard let websocket = instance.websocket, websocket.enabled else {
            throw .refused(.badRequest, "WebSocket is not enabled for this instance. Configure it first using POST /api/events/websocket/\(instance.name)")
        }
        return HTTPResponse(status: .ok, headers: [("X-Accel-Redirect", StreamGate.redirect(channel: StreamChannel.id(of: instance)))])
    }
}
