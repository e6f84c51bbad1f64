/// One line per record for `log dump`: tokens only as digest prefixes, never anything secret.
extension LogRecord: CustomStringConvertible {
    public var description: String {
        func ws(_ c: WebSocketConfig?) -> String {
            guard let c else { return "websocket=null" }
            return "websocket={enabled:\(c.enabled) events:[\(c.events.map(\.name).joined(separator: ","))] mediaBase64:\(c.mediaBase64)}"
        }
        switch self {
        case let .accountCreated(name, token, quota): return "account.created name=\(name) token=\(token) quota=\(quota)"
        case let .accountDisabled(name): return "account.disabled name=\(name)"
        case let .instanceCreated(account, name, token, w): return "instance.created account=\(account) name=\(name) token=\(token) \(ws(w))"
        case let .instanceDeleted(account, name): return "instance.deleted account=\(account) name=\(name)"
        case let .websocketSaved(account, name, w): return "websocket.saved account=\(account) name=\(name) \(ws(w))"
        case let .webhookSaved(account, name, h):
            let c = h.config
            return "webhook.saved account=\(account) name=\(name) label=\(c.label.name) enabled=\(c.enabled) url=\(c.url) "
                + "authorization=\(h.sealedAuthorization.isEmpty ? "none" : "<encrypted>") byEvents=\(c.byEvents) "
                + "events=[\(c.events.map(\.name).joined(separator: ","))] mediaBase64=\(c.mediaBase64) signingSecret=<encrypted> key=\(h.keyID)"
                + (h.generation == 0 ? "" : " generation=\(h.generation)")
        case let .webhookDeleted(account, name, label): return "webhook.deleted account=\(account) name=\(name) label=\(label.name)"
        case .batch(let records): return "batch [" + records.map(\.description).joined(separator: "; ") + "]"
        case let .publisherCreated(name, token): return "publisher.created name=\(name) token=\(token)"
        case let .publisherDisabled(name): return "publisher.disabled name=\(name)"
        case let .streamClosed(account, name, epoch): return "stream.closed account=\(account) name=\(name) epoch=\(epoch)"
        }
    }
}
