/// The delivery queue folded: what replaying `deliveries.log` in order leaves behind. Every
/// delivery still to be made (pending) and every dead letter; delivered, dropped and purged ones
/// are gone, and so is an event once none of its deliveries is left.
public struct DeliveryQueue: ReplayedLog {
    public typealias Entry = QueueRecord
    public static var kind: LogKind { .deliveries }

    /// A queued event, shared by its deliveries (the envelope is stored once however many
    /// labels it goes to). Immutable.
    public final class Event: Sendable {
        public let id: String
        public let account: String
        public let instance: String
        public let type: EventType
        /// The whole envelope, media included.
        public let envelope: [UInt8]
        public let queuedAt: UInt64

        init(_ e: QueuedEvent) {
            id = e.id
            account = e.account
            instance = e.instance
            type = e.event
            envelope = e.envelope
            queuedAt = e.queuedAt
        }
    }

    public struct Delivery: Sendable {
        public let id: DeliveryID
        public let event: Event
        public let label: WebhookLabel
        /// The label's generation when the event was queued (`StoredWebhook.generation`): the
        /// delivery goes to that life of the label only.
        public internal(set) var labelGeneration: UInt64 = 0
        /// Failed attempts so far (0: never tried, or revived by `webhook dead retry`). For a
        /// dead letter, the attempts it took.
        public internal(set) var attempts: UInt32
        /// When the next attempt is due (pending deliveries).
        public internal(set) var nextDue: UInt64
        /// "" until an attempt failed.
        public internal(set) var lastError: String
        /// When it became a dead letter; nil while pending.
        public internal(set) var deadSince: UInt64?

        public var isDead: Bool { deadSince != nil }
    }

    /// Deliveries to make: never tried, or waiting for their next retry.
    public private(set) var pending: [DeliveryID: Delivery] = [:]
    /// The dead-letter queue.
    public private(set) var dead: [DeliveryID: Delivery] = [:]
    /// The number the next queued delivery gets; above every number ever given.
    public private(set) var nextID: DeliveryID = 1
    /// Pending deliveries with at least one failed attempt ("retrying" on the status page); the
    /// others are "queued".
    public private(set) var retryingCount = 0
    public private(set) var recordCount = 0

    /// Which pending deliveries changed, for a reader that keeps its own index of them (the
    /// deliverer's `DispatchIndex`): the id of every delivery that became pending, changed
    /// while pending (a failed attempt) or left pending, in the order applied. Entry `k` of the
    /// journal is `changes[k - changesBase]`; the oldest half is forgotten once it holds more
    /// than `journalLimit`, so a reader that fell behind (`changedIDs` nil) reads the whole queue.
    private var changes: [DeliveryID] = []
    private var changesBase = 0
    /// Different for every state replayed from nothing (start, compaction, recovery): a
    /// journal position is only meaningful within one.
    public let generation = UInt64.random(in: 1...UInt64.max)

    public init() {}

    /// The journal position after the last change applied.
    public var changeCursor: Int { changesBase + changes.count }

    /// The deliveries changed since journal position `cursor` (a delivery may appear more than
    /// once), or nil when that part of the journal is forgotten.
    public func changedIDs(since cursor: Int) -> ArraySlice<DeliveryID>? {
        guard cursor >= changesBase, cursor <= changeCursor else { return nil }
        return changes[(cursor - changesBase)...]
    }

    /// Twice the pending deliveries, at least 65,536: a reader that must read the whole queue
    /// again has let at least that many changes go by, so its full reads cost O(1) per change.
    private var journalLimit: Int { max(65_536, 2 * pending.count) }

    public var queuedCount: Int { pending.count - retryingCount }

    public func delivery(_ id: DeliveryID) -> Delivery? { pending[id] ?? dead[id] }

    // MARK: replay

    public mutating func apply(_ record: QueueRecord) {
        recordCount += 1
        applyChange(record)
        if changes.count > journalLimit {
            let cut = changes.count / 2
            changes.removeFirst(cut)
            changesBase += cut
        }
    }

    /// Records were checked against the state when written, under the queue's write lock, so one
    /// that no longer fits (a delivery that is not where the record expects it) is skipped.
    private mutating func applyChange(_ record: QueueRecord) {
        switch record {
        case let .queued(queued, ids):
            let event = Event(queued)
            for (k, id) in ids.enumerated() where pending[id] == nil && dead[id] == nil {
                pending[id] = Delivery(id: id, event: event, label: queued.labels[k], labelGeneration: queued.generations[k],
                                       attempts: 0, nextDue: queued.queuedAt, lastError: "", deadSince: nil)
                changes.append(id)
                liveEvents[ObjectIdentifier(event), default: 0] += 1
                nextID = max(nextID, id &+ 1)
            }
        case let .attemptFailed(id, attempt, _, nextDue, error):
            guard var d = pending[id], attempt > 0 else { return }
            if d.attempts == 0 { retryingCount += 1 }
            d.attempts = attempt
            d.nextDue = nextDue
            d.lastError = error
            pending[id] = d
            changes.append(id)
        case .delivered(let id, _, _, _):
            if let d = removePending(id) { release(d) }
        case let .dead(id, attempts, at, error):
            guard var d = removePending(id) else { return }
            d.attempts = attempts
            d.lastError = error
            d.deadSince = at
            dead[id] = d
        case .dropped(let id, _, _):
            if let d = removePending(id) { release(d) }
        case let .revived(id, at):
            guard var d = dead.removeValue(forKey: id) else { return }
            d.attempts = 0
            d.nextDue = at
            d.lastError = ""
            d.deadSince = nil
            pending[id] = d
            changes.append(id)
        case .purged(let id):
            if let d = dead.removeValue(forKey: id) { release(d) }
        case .nextID(let id):
            nextID = max(nextID, id)
        case .batch(let records):
            for r in records { applyChange(r) }
        }
    }

    private mutating func removePending(_ id: DeliveryID) -> Delivery? {
        guard let d = pending.removeValue(forKey: id) else { return nil }
        if d.attempts > 0 { retryingCount -= 1 }
        changes.append(id)
        return d
    }

    /// `d` has left the queue for good. Its event's key goes while `d` still holds the event, so
    /// the identifier cannot have been reused by another object yet.
    private mutating func release(_ d: Delivery) {
        let key = ObjectIdentifier(d.event)
        guard let n = liveEvents[key] else { return }
        liveEvents[key] = n > 1 ? n - 1 : nil
    }

    // MARK: compaction

    /// Live deliveries per event, kept as records are applied so that the compaction threshold,
    /// checked after every write, costs no pass over the queue.
    private var liveEvents: [ObjectIdentifier: Int] = [:]

    /// The records `liveRecords` holds.
    public var liveRecordCount: Int { 1 + liveEvents.count + retryingCount + dead.count }

    /// One `nextID` record, then per live event (in the order of its first live delivery) one
    /// `queued` record holding only its live deliveries, each followed by what brings it to its
    /// present state: `attemptFailed` for a pending one that has failed, `dead` for a dead
    /// letter. A revived delivery comes back due from its event's queue time, which, like the
    /// time it was revived, is past: it stays due at once.
    public var liveRecords: [QueueRecord] {
        let all = (Array(pending.values) + Array(dead.values)).sorted { $0.id < $1.id }
        var byEvent: [ObjectIdentifier: [Delivery]] = [:]
        var order: [ObjectIdentifier] = []
        for d in all {
            let key = ObjectIdentifier(d.event)
            if byEvent[key] == nil { order.append(key) }
            byEvent[key, default: []].append(d)
        }
        var out: [QueueRecord] = [.nextID(nextID)]
        for key in order {
            let ds = byEvent[key]!
            let e = ds[0].event
            let queued = QueuedEvent(id: e.id, account: e.account, instance: e.instance, event: e.type, envelope: e.envelope,
                                     labels: ds.map(\.label), generations: ds.map(\.labelGeneration), queuedAt: e.queuedAt)
            out.append(.queued(event: queued, ids: ds.map(\.id)))
            for d in ds {
                if let since = d.deadSince {
                    out.append(.dead(id: d.id, attempts: d.attempts, at: since, error: d.lastError))
                } else if d.attempts > 0 {
                    out.append(.attemptFailed(id: d.id, attempt: d.attempts, at: d.nextDue, nextDue: d.nextDue, error: d.lastError))
                }
            }
        }
        return out
    }
}
