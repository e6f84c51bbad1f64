/// A webhook as the state and the log hold it: its configuration with the secrets taken out and
/// sealed (SPEC §4: never on disk in clear). `config.authorization` is always `""` here; the
/// real one, when there is one, is in `sealedAuthorization`.
public struct StoredWebhook: Equatable, Sendable {
    public var config: WebhookConfig
    /// Empty: no `Authorization` header.
    public var sealedAuthorization: [UInt8]
    public var sealedSigningSecret: [UInt8]
    /// The deployment key both boxes are sealed under: `serve` compares it with the key it
    /// loads before it decrypts anything.
    public var keyID: DeploymentKey.ID

    public var label: WebhookLabel { config.label }

    public init(config: WebhookConfig, sealedAuthorization: [UInt8], sealedSigningSecret: [UInt8], keyID: DeploymentKey.ID) {
        self.config = WebhookConfig(label: config.label, enabled: config.enabled, url: config.url, authorization: "",
                                    byEvents: config.byEvents, eventList: config.eventList, mediaBase64: config.mediaBase64)
        self.sealedAuthorization = sealedAuthorization
        self.sealedSigningSecret = sealedSigningSecret
        self.keyID = keyID
    }

    /// What each box's authenticated context says it belongs to: a box moved under another
    /// webhook (or field) does not open.
    public static func context(account: String, instance: String, label: WebhookLabel, field: String) -> String {
        "\(account)/\(instance)/\(label.name)/\(field)"
    }
}
