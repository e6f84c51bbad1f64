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
    /// The generation of each of `labels` when the event was queued (`StoredWebhook.generation`):
    /// a delivery goes only to that life of its label. As many as `labels`.
    public var generations: [UInt64]
    /// Unix microseconds.
    public var queuedAt: UInt64

    /// `generations` nil: 0 for every label (queued before generations existed).
    public init(id: String, account: String, instance: String, event: EventType, envelope: [UInt8], labels: [WebhookLabel],
                generations: [UInt64]? = nil, queuedAt: UInt64) {
        precondition(generations == nil || generations!.count == labels.count, "one generation per label")
        self.id = id
        self.account = account
        self.instance = instance
        self.event = event
        self.envelope = envelope
        self.labels = labels
        self.generations = generations ?? [UInt64](repeating: 0, count: labels.count)
        self.queuedAt = queuedAt
    }
}

/// The durable delivery queue as the publish handler sees it.
public protocol EventQueue: AnyObject, Sendable {
    /// Returns once the event's deliveries are durable (fsynced; group commit): no crash of any
    /// process loses them. Throws a `StoreError` when they could not be written (then nothing
    /// was queued).
    func enqueue(_ event: QueuedEvent) throws
    /// The six figures of the status page's `delivery` object (SPEC §6.3).
    func status() -> DeliveryStatus
}

extension EventQueue {
    public func status() -> DeliveryStatus { .zero }
}

/// nginx's WebSocket fan-out as the workers see it. Best effort: the stream keeps nothing.
public protocol EventStream: AnyObject, Sendable {
    /// Hands `envelope` to every subscriber of `channel`; false when the fan-out did not take it.
    func publish(channel: String, envelope: [UInt8]) -> Bool
    /// Ends every subscription of `channel` (the instance was deleted, its WebSocket configuration
    /// disabled, or its account disabled); best effort.
    func close(channel: String)
}

/// The fan-out channel of an instance: `account.instance.incarnation`. Instance names are unique
/// only within their account, so the channel names both (`.` is in neither name's alphabet, so
/// the parts read back unambiguously).
///
/// `incarnation` makes sure a channel is never used again once closed. Measured with nginx 1.22 +
/// nchan 1.3.6 and more than one nginx worker: after a DELETE on a channel (how an instance's
/// connections are closed), later subscribers of the same channel id stop receiving events and
/// are no longer closed by a DELETE, while the publisher still answers 201. It is the last 8 bytes
/// of the instance token's digest in hex (fixed for the instance's life, different for a
/// re-created instance unless it was given the same chosen token again, and revealing nothing of
/// the token), followed, once the instance's connections were closed without deleting it (its
/// configuration disabled), by its `streamEpoch` as 8 more hex digits. A token rotation, if one is
/// ever added, must close the old channel.
public enum StreamChannel {
    public static func id(of instance: State.Instance) -> String {
        id(account: instance.account, instance: instance.name, incarnation: instance.token, epoch: instance.streamEpoch)
    }

    public static func id(account: String, instance: String, incarnation token: TokenDigest, epoch: UInt32 = 0) -> String {
        var tag = Hex.lowercase(token.bytes.suffix(8))
        if epoch != 0 { tag += withUnsafeBytes(of: epoch.bigEndian) { Hex.lowercase($0) } }
        return account + "." + instance + "." + tag
    }
}
