/// One webhook of an instance, chosen by its label, as stored and as returned (SPEC §4). Its
/// signing secret is not part of it: the secret is kept across saves (unless rotated) while the
/// configuration is replaced, so the store holds the two side by side.
///
/// Invariant: a disabled configuration carries nothing but its label, whatever was sent
/// (`url: ""`, `authorization: ""`, `byEvents: false`, `events: []`, `mediaBase64: false`).
/// The initialisers enforce it; the properties are read-only so it cannot be broken afterwards.
/// They do not validate the url or authorization: records read back from the log were
/// validated when they were saved, and the parsers below are the one way in from a request.
public struct WebhookConfig: Equatable, Sendable {
    public let label: WebhookLabel
    public let enabled: Bool
    /// `""` when disabled, else a URL that passed `WebhookURL.validate`.
    public let url: String
    /// A secret: `""` means no `Authorization` header. Never logged: see `description`.
    public let authorization: String
    public let byEvents: Bool
    /// Empty means "all six types": stored and returned as `[]`.
    public let eventList: EventList
    public let mediaBase64: Bool

    public var events: [EventType] { Array(eventList) }

    public static let maxAuthorizationBytes = 1024

    public init(label: WebhookLabel, enabled: Bool, url: String = "", authorization: String = "",
                byEvents: Bool = false, events: [EventType] = [], mediaBase64: Bool = false) {
        var list = EventList()
        for e in events where !list.contains(e) { list.append(e) }   // duplicates dropped, first order kept
        self.init(label: label, enabled: enabled, url: url, authorization: authorization,
                  byEvents: byEvents, eventList: list, mediaBase64: mediaBase64)
    }

    public init(label: WebhookLabel, enabled: Bool, url: String, authorization: String,
                byEvents: Bool, eventList: EventList, mediaBase64: Bool) {
        self.label = label
        self.enabled = enabled
        self.url = enabled ? url : ""
        self.authorization = enabled ? authorization : ""
        self.byEvents = enabled && byEvents
        self.eventList = enabled ? eventList : EventList()
        self.mediaBase64 = enabled && mediaBase64
    }

    /// What `GET /api/instance/list` shows for a `default` label that was never saved.
    public static let unconfigured = WebhookConfig(label: .default, enabled: false)

    // MARK: - JSON

    /// The whole webhook object of the webhook endpoints and of instance creation, secrets
    /// included, keys in SPEC's order. Only for a token that may act on the instance.
    public func json(signingSecret: SigningSecret) -> JSONValue {
        .object([
            ("label", .string(label.name)),
            ("enabled", .bool(enabled)),
            ("url", .string(url)),
            ("authorization", .string(authorization)),
            ("byEvents", .bool(byEvents)),
            ("events", .array(events.map { .string($0.name) })),
            ("mediaBase64", .bool(mediaBase64)),
            ("signingSecret", .string(signingSecret.text)),
        ])
    }

    /// The `webhook` of an instance-list item: no `authorization`, no `signingSecret`.
    public var summaryJSON: JSONValue {
        .object([
            ("label", .string(label.name)),
            ("enabled", .bool(enabled)),
            ("url", .string(url)),
            ("byEvents", .bool(byEvents)),
            ("events", .array(events.map { .string($0.name) })),
            ("mediaBase64", .bool(mediaBase64)),
        ])
    }

    // MARK: - Parsing

    /// A valid body of `POST /api/events/webhook/:instance`.
    public struct Update: Equatable, Sendable {
        public let config: WebhookConfig
        /// Replace the label's signing secret (a label saved for the first time gets one anyway).
        public let rotateSecret: Bool
    }

    /// Validates the body of `POST /api/events/webhook/:instance`: nil for anything SPEC §4
    /// calls an invalid body (400 `Invalid request body`). Unknown keys are ignored.
    public static func parse(body: JSONValue) -> Update? {
        guard case .object = body,
              let label = WebhookLabel.requested(body["label"]),
              let rotate = ConfigFields.bool(body["rotateSecret"], default: false),
              let config = parse(label: label, enabled: body["enabled"], url: body["url"],
                                 authorization: body["authorization"], byEvents: body["byEvents"],
                                 events: body["events"], mediaBase64: body["mediaBase64"]) else { return nil }
        return Update(config: config, rotateSecret: rotate)
    }

    /// The `webhook*` fields of `POST /api/instance/new`, saved as the `default` label.
    static let instanceFieldNames = ["webhookEnabled", "webhookURL", "webhookAuthorization",
                                     "webhookByEvents", "webhookEvents", "webhookMediaBase64"]

    /// Whether instance creation was asked for a webhook, i.e. whether its response's `webhook`
    /// is an object rather than null. Only the six documented fields count: any other
    /// `webhook…` key is an unknown key, ignored like the rest.
    public static func hasInstanceFields(_ body: JSONValue) -> Bool {
        instanceFieldNames.contains { body[$0] != nil }
    }

    /// The `webhook*` fields of `POST /api/instance/new`, with the rules of the webhook POST;
    /// nil when they are invalid (SPEC: creation goes on with `webhook: null`). Callers ask
    /// `hasInstanceFields` first: with none of the fields present this is nil (`enabled` missing).
    public static func parseInstanceFields(_ body: JSONValue) -> WebhookConfig? {
        guard case .object = body else { return nil }
        return parse(label: .default, enabled: body["webhookEnabled"], url: body["webhookURL"],
                     authorization: body["webhookAuthorization"], byEvents: body["webhookByEvents"],
                     events: body["webhookEvents"], mediaBase64: body["webhookMediaBase64"])
    }

    /// The rules shared by both entry points; each member as looked up (nil = absent).
    ///
    /// Every member that is present is checked, type and value, whether or not the webhook is
    /// enabled, even though a disabled configuration then drops it: SPEC says "anything else
    /// invalid is 400", and the WebSocket POST already refuses an unknown event name in a
    /// disabled body. The one exception is `url: ""` with `enabled: false`, which is exactly what
    /// GET returns for a disabled label, so sending that object back must be accepted.
    public static func parse(label: WebhookLabel, enabled: JSONValue?, url: JSONValue?, authorization: JSONValue?,
                             byEvents: JSONValue?, events: JSONValue?, mediaBase64: JSONValue?) -> WebhookConfig? {
        guard case .bool(let isEnabled)? = enabled,
              let byEventsValue = ConfigFields.bool(byEvents, default: false),
              let list = ConfigFields.events(events),
              let media = ConfigFields.bool(mediaBase64, default: false) else { return nil }

        let urlValue: String
        switch url {
        case nil where !isEnabled:
            urlValue = ""
        case .string(let s)? where s.isEmpty && !isEnabled:
            urlValue = ""
        case .string(let s)?:
            guard let valid = WebhookURL.validate(s) else { return nil }
            urlValue = valid
        default:
            return nil   // required when enabled; null or a non-string always
        }

        let authorizationValue: String
        switch authorization {
        case nil:
            authorizationValue = ""
        case .string(let s)? where isValidAuthorization(s):
            authorizationValue = s
        default:
            return nil
        }

        return WebhookConfig(label: label, enabled: isEnabled, url: urlValue, authorization: authorizationValue,
                             byEvents: byEventsValue, eventList: list, mediaBase64: media)
    }

    /// At most 1,024 printable ASCII characters (0x20–0x7E): a header value that cannot split
    /// the request or smuggle a line. `""` is valid and means "no header".
    public static func isValidAuthorization(_ s: String) -> Bool {
        let u = s.utf8
        return u.count <= maxAuthorizationBytes && u.allSatisfy { $0 >= 0x20 && $0 <= 0x7E }
    }
}

/// Interpolating a configuration into a log line must not leak its `authorization`.
extension WebhookConfig: CustomStringConvertible, CustomReflectable {
    public var description: String {
        let auth = authorization.isEmpty ? "none" : "<redacted>"
        return "WebhookConfig(label: \(label), enabled: \(enabled), url: \(url), authorization: \(auth), "
            + "byEvents: \(byEvents), events: \(events.map(\.name)), mediaBase64: \(mediaBase64))"
    }

    public var customMirror: Mirror {
        Mirror(self, children: ["label": label.name, "enabled": enabled, "url": url,
                                "authorization": authorization.isEmpty ? "" : "<redacted>",
                                "byEvents": byEvents, "events": events.map(\.name), "mediaBase64": mediaBase64])
    }
}
