/// Where a published event goes besides the answer (SPEC §6): the durable webhook queue and the
/// WebSocket fan-out. The publish handler knows them only by these protocols.

/// One event as queued for webhook delivery: everything a deliverer needs that does not change
/// afterwards. The webhook's configuration (url, authorization, byEvents, mediaBase64, secret)
/// is read at each attempt, as it is then (SPEC §6.3).
public struct QueuedEvent: Sendable, Equatable {
    /// The producer's id or one made by the server: the `webhook-id` of every attempt.
    public var id: String
    public var account: String
    public var instance: String
    public var event: EventType
    /// The whole envelope `{event, data, instanceData}`, media included; each attempt strips
    /// `data.message.media.base64` when its webhook's `mediaBase64` is false.
    public var envelope: [UInt8]
    /// The enabled webhooks whose filter let the event through at publish time: one delivery each.
    public var labels: [WebhookLabel]
    /// Unix microseconds.
    public var queuedAt: UInt64

    public init(id: String, account: String, instance: String, event: EventType, envelope: [UInt8], labels: [WebhookLabel], queuedAt: UInt64) {
        self.id = id
        self.account = account
        self.instance = instance
        self.event = event
        self.envelope = envelope
        self.labels = labels
        self.queuedAt = queuedAt
    }
}

/// The durable delivery queue as the publish handler sees it.
public protocol EventQueue: AnyObject, Sendable {
    /// Returns once the event's deliveries are durable (fsynced; group commit): no crash of any
    /// process loses them. Throws a `StoreError` when they could not be written (then nothing
    /// was queued).
    func enqueue(_ event: QueuedEvent) throws
}

/// nginx's WebSocket fan-out as the workers see it. Best effort: the stream keeps nothing.
public protocol EventStream: AnyObject, Sendable {
    /// Hands `envelope` to every subscriber of `channel`; false when the fan-out did not take it.
    func publish(channel: String, envelope: [UInt8]) -> Bool
    /// Ends every subscription of `channel` (the instance was deleted); best effort.
    func close(channel: String)
}

/// The fan-out channel of an instance. Instance names are unique only within their account, so
/// the channel names both; `.` is in neither name's alphabet, so the pair reads back unambiguously.
public enum StreamChannel {
    public static func id(account: String, instance: String) -> String { account + "." + instance }
}
