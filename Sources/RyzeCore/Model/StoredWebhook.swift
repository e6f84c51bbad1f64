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
    /// Which life of the label this is: a random number drawn each time the label becomes enabled
    /// (saved enabled while it was absent or disabled), kept while it stays enabled. A delivery
    /// carries the generation its event was queued for, and is dropped, never sent, when the
    /// label's generation is another one by the time of its attempt: SPEC §4 and §6.3 drop the
    /// queued deliveries of a label deleted or disabled, or of a deleted instance, and a label
    /// saved again afterwards under the same name (or on a re-created instance) must not receive
    /// them. 0: saved before generations existed (log record type 6), matching deliveries queued
    /// then (queue record type 1).
    public var generation: UInt64

    public var label: WebhookLabel { config.label }

    public init(config: WebhookConfig, sealedAuthorization: [UInt8], sealedSigningSecret: [UInt8], keyID: DeploymentKey.ID,
                generation: UInt64 = 0) {
        self.config = WebhookConfig(label: config.label, enabled: config.enabled, url: config.url, authorization: "",
                                    byEvents: config.byEvents, eventList: config.eventList, mediaBase64: config.mediaBase64)
        self.sealedAuthorization = sealedAuthorization
        self.sealedSigningSecret = sealedSigningSecret
        self.keyID = keyID
        self.generation = generation
    }

    /// This label as saved over `existing` (nil: a new label): with `existing`'s generation while
    /// both are enabled (the same life), else with its own, the fresh one `WebhookSealer.store`
    /// drew (a new life). Runs under the write lock, so it draws nothing itself.
    public func replacing(_ existing: StoredWebhook?) -> StoredWebhook {
        guard let existing, existing.config.enabled, config.enabled else { return self }
        var kept = self
        kept.generation = existing.generation
        return kept
    }

    /// What each box's authenticated context says it belongs to: a box moved under another
    /// webhook (or field) does not open.
    public static func context(account: String, instance: String, label: WebhookLabel, field: String) -> String {
        "\(account)/\(instance)/\(label.name)/\(field)"
    }
}
