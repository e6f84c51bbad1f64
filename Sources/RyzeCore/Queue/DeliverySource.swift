/// The delivery queue as the deliverer sees it, so that one deliverer (its scheduling, bounds
/// per endpoint, retry policy) works on either queue: the data directory's `QueueStore` (one
/// host), or PostgreSQL's `ryze_deliveries` shared by several deliverers (`--store`, SPEC §7),
/// where the view holds only the deliveries this deliverer has leased.
///
/// The view is a `DeliveryQueue`: the deliverer reads its pending deliveries and its change
/// journal, and every change it makes goes through `record` and `drop`, which answer false for
/// a delivery that was no longer this deliverer's to record (then it is gone from the view).
public protocol DeliverySource: AnyObject, Sendable {
    /// Brings the view up to date (the local queue: what other processes wrote; PostgreSQL:
    /// renews this deliverer's leases and claims due deliveries while it has room).
    func refresh() throws
    func read<T, E: Error>(_ body: (DeliveryQueue) throws(E) -> T) throws(E) -> T
    @discardableResult
    func record(_ outcomes: [(outcome: QueueStore.Outcome, id: DeliveryID, attempt: UInt32)]) throws -> [Bool]
    func drop(_ drops: [(id: DeliveryID, reason: String)]) throws -> Int
    /// Whether an attempt at `id` that may take `seconds` can start now without another
    /// deliverer being allowed to start one meanwhile (PostgreSQL: this deliverer's lease on it
    /// outlasts the attempt). Checked just before each request.
    func mayAttempt(_ id: DeliveryID, seconds: Double) -> Bool
    /// The deliverer is stopping: give back what it holds (PostgreSQL: its leases).
    func close()
    /// The deliverer's figures for this host's status pages (in flight, delivered, dropped).
    var counters: DeliveryCounters { get }
}

/// The dead-letter queue as `webhook dead ...` sees it (SPEC §6.3), in either store.
public protocol DeadLetterQueue: AnyObject {
    func deadLetters(instance: String?) throws -> [QueueStore.DeadLetter]
    /// All or nothing: `QueueStore.DeadLetterError.notDead` when one of `ids` is not a dead letter.
    func retryDead(_ ids: [DeliveryID]?) throws -> Int
    func purgeDead(olderThan: UInt64?) throws -> Int
}

extension QueueStore: DeliverySource, DeadLetterQueue {
    public func mayAttempt(_ id: DeliveryID, seconds: Double) -> Bool { true }
    public func close() {}
}
