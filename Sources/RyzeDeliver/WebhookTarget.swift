import RyzeCore

/// Where and how one delivery goes, from its label's configuration as it is now (SPEC §6.3:
/// "each attempt uses the label's configuration as it is then"). Secrets stay sealed here; the
/// sender opens them for the one request that needs them.
struct WebhookTarget: Sendable {
    let url: String
    let endpoint: Endpoint
    let mediaBase64: Bool
    let webhook: StoredWebhook

    enum Lookup: Sendable {
        case send(WebhookTarget)
        /// Never to be sent; the reason is recorded with the drop.
        case drop(reason: String)
    }

    /// The label's configuration for `delivery` in `state`. The event filter is not applied
    /// again: it chose the labels when the event was published.
    static func lookup(_ delivery: DeliveryQueue.Delivery, in state: State) -> Lookup {
        let e = delivery.event
        guard let instance = state.instance(account: e.account, name: e.instance) else { return .drop(reason: "instance deleted") }
        guard let hook = instance.webhooks[delivery.label] else { return .drop(reason: "label deleted") }
        let c = hook.config
        guard c.enabled else { return .drop(reason: "label disabled") }
        // Enabled again, or saved again after a delete, or on an instance deleted and made again,
        // since the event was queued: another life of the label, which never gets the old one's
        // deliveries (see `StoredWebhook.generation`).
        guard hook.generation == delivery.labelGeneration else { return .drop(reason: "label deleted or disabled since queued") }
        let url = c.byEvents ? c.url + "/" + e.type.name : c.url
        guard let endpoint = Endpoint(url: url) else { return .drop(reason: "url unusable") }
        return .send(WebhookTarget(url: url, endpoint: endpoint, mediaBase64: c.mediaBase64, webhook: hook))
    }
}

/// Scheme, host and port of a URL: what "one endpoint" means for the in-flight bound and for
/// pausing (SPEC §6.3). The host is lower-cased; an IPv6 literal is kept without brackets.
struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    let scheme: String
    let host: String
    let port: Int

    init?(url: String) {
        guard let colon = url.firstIndex(of: ":") else { return nil }
        let scheme = url[..<colon].lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        let rest = url[url.index(after: colon)...]
        guard rest.hasPrefix("//") else { return nil }
        let authority = rest.dropFirst(2).prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard !authority.contains("@") else { return nil }
        var host = Substring(authority)
        var port = scheme == "https" ? 443 : 80
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()) else { return nil }
                port = p
            } else if !after.isEmpty {
                return nil
            }
            host = host[host.index(after: host.startIndex)..<close]
        } else if let c = host.lastIndex(of: ":") {
            guard let p = Int(host[host.index(after: c)...]) else { return nil }
            port = p
            host = host[..<c]
        }
        guard !host.isEmpty, (1...65535).contains(port) else { return nil }
        self.scheme = scheme
        self.host = host.lowercased()
        self.port = port
    }

    var description: String { "\(scheme)://\(host.contains(":") ? "[\(host)]" : host):\(port)" }
}

/// `WebhookTarget.lookup` remembered per label, label generation and event type, for one
/// version of the configuration (`removeAll` when it changes): the scheduler looks up every
/// delivery it indexes and every one it hands out, and a backlog is mostly many deliveries to
/// few labels. (The generation is part of the key because the answer depends on it: deliveries
/// of one label queued for an earlier life of it are dropped, the others sent.)
/// Scheduler thread only.
struct TargetCache {
    private struct Key: Hashable {
        let account: String
        let instance: String
        let label: String
        let generation: UInt64
        let type: UInt8
    }

    private var lookups: [Key: WebhookTarget.Lookup] = [:]

    mutating func lookup(_ delivery: DeliveryQueue.Delivery, in state: State) -> WebhookTarget.Lookup {
        let e = delivery.event
        let key = Key(account: e.account, instance: e.instance, label: delivery.label.name, generation: delivery.labelGeneration,
                      type: e.type.rawValue)
        if let known = lookups[key] { return known }
        let found = WebhookTarget.lookup(delivery, in: state)
        lookups[key] = found
        return found
    }

    mutating func removeAll() { lookups.removeAll() }
}
