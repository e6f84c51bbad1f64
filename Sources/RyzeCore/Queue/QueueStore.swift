import Logging

/// The one-host delivery queue: `deliveries.log` in the data directory (an `AppendLog` folded
/// into a `DeliveryQueue`, with the same lock, group commit, follower and compaction as
/// `events.log`), and the deliverer's counters beside it. Workers queue events through it, the
/// deliverer records attempts in it, and `webhook dead ...` handles dead letters in it; every
/// change is one record written under the queue's deployment-wide lock (`deliveries.lock`).
///
/// Decisions below run inside `AppendLog.write`: against the latest state, under the lock, and
/// they may not block or call back into a store.
public final class QueueStore: EventQueue {
    public let log: AppendLog<DeliveryQueue>
    public let counters: DeliveryCounters
    public let clock: WallClock

    /// Opens (creating if needed) the queue of the data directory `directory`. Workers pass no
    /// compaction factor (they only add live records); the deliverer, whose records make the
    /// garbage, compacts automatically.
    public init(directory: String, autoCompactionFactor: Int? = nil, clock: WallClock = .system,
                logger: Logger = Logger(label: "ryze.queue")) throws(StoreError) {
        log = try AppendLog<DeliveryQueue>(directory: directory, autoCompactionFactor: autoCompactionFactor, logger: logger)
        counters = try DeliveryCounters(path: directory + "/" + LogKind.deliveries.name + ".counters")
        self.clock = clock
    }

    public func refresh() throws(StoreError) { try log.refresh() }

    public func read<T, E: Error>(_ body: (DeliveryQueue) throws(E) -> T) throws(E) -> T { try log.withState(body) }

    // MARK: queueing (workers)

    /// Bytes a `queued` record adds to its envelope at most: ids, names, labels.
    static let queuedOverhead = 64 * 1024

    /// One record holding the event and one delivery per label, written with group commit:
    /// durable before this returns. No labels: nothing to write.
    public func enqueue(_ event: QueuedEvent) throws {
        guard !event.labels.isEmpty else { return }
        guard event.envelope.count <= LogKind.deliveries.maxPayload - QueueStore.queuedOverhead else {
            throw StoreError.io("event \(event.id) of \(event.envelope.count) bytes is larger than the queue takes")
        }
        try log.write { queue -> (QueueRecord?, Void) in
            let ids = (0..<event.labels.count).map { queue.nextID + DeliveryID($0) }
            return (.queued(event: event, ids: ids), ())
        }
    }

    // MARK: attempts (the deliverer)

    /// What an attempt came to, as the queue records it.
    public enum Outcome: Sendable, Equatable {
        case delivered(status: Int)
        /// Failed; the next attempt is due at `nextDue`.
        case retry(error: String, nextDue: UInt64)
        /// Failed for the last time: a dead letter.
        case dead(error: String)
        /// Refused before any request was made (the address rule): a dead letter, with the
        /// attempts made before.
        case refused(error: String)
        /// Not sent: the label was disabled or deleted, or the instance deleted.
        case dropped(reason: String)
        /// Not attempted and not recorded: the deliverer no longer held the delivery long
        /// enough to make an attempt (a PostgreSQL lease about to run out). It stays queued.
        case released
    }

    /// Records the outcome of attempt `attempt` (1 for the first) of a pending delivery. False
    /// when the delivery was no longer pending with `attempt - 1` failures (then nothing was
    /// written: someone else recorded it).
    @discardableResult
    public func record(_ outcome: Outcome, for id: DeliveryID, attempt: UInt32) throws -> Bool {
        try record([(outcome, id, attempt)])[0]
    }

    /// Most outcomes `record` takes at once: their records share one frame (a batch), whose
    /// payload must stay well under the log's limit (an outcome record is at most ~350 bytes).
    public static let maxOutcomesPerRecord = 1000

    /// Records several outcomes in one record (one append, one `fdatasync`): the deliverer's
    /// recorder writes every outcome that finished during the previous write at once. Each
    /// element of the answer is `record`'s answer for that outcome; a delivery named twice is
    /// recorded once.
    public func record(_ outcomes: [(outcome: Outcome, id: DeliveryID, attempt: UInt32)]) throws -> [Bool] {
        precondition(outcomes.count <= QueueStore.maxOutcomesPerRecord)
        guard !outcomes.isEmpty else { return [] }
        let now = clock.nowMicroseconds()
        return try log.write { queue -> (QueueRecord?, [Bool]) in
            var records: [QueueRecord] = []
            var answers: [Bool] = []
            var seen = Set<DeliveryID>()
            for (outcome, id, attempt) in outcomes {
                if case .released = outcome {
                    answers.append(false)
                    continue
                }
                guard let d = queue.pending[id], d.attempts + 1 == attempt || outcome.isDrop, seen.insert(id).inserted else {
                    answers.append(false)
                    continue
                }
                answers.append(true)
                switch outcome {
                case .delivered(let status):
                    records.append(.delivered(id: id, attempt: attempt, at: now, status: UInt16(clamping: status)))
                case let .retry(error, nextDue):
                    records.append(.attemptFailed(id: id, attempt: attempt, at: now, nextDue: nextDue, error: error))
                case .dead(let error):
                    records.append(.dead(id: id, attempts: attempt, at: now, error: error))
                case .refused(let error):
                    records.append(.dead(id: id, attempts: d.attempts, at: now, error: error))
                case .dropped(let reason):
                    records.append(.dropped(id: id, at: now, reason: reason))
                case .released:
                    break
                }
            }
            return (QueueStore.single(records), answers)
        }
    }

    /// Drops several pending deliveries in one record (the deliverer's sweep after a label or
    /// an instance went away); returns how many were still pending and are now dropped.
    public func drop(_ drops: [(id: DeliveryID, reason: String)]) throws -> Int {
        guard !drops.isEmpty else { return 0 }
        let now = clock.nowMicroseconds()
        return try log.write { queue -> (QueueRecord?, Int) in
            var seen = Set<DeliveryID>()
            let records = drops.filter { queue.pending[$0.id] != nil && seen.insert($0.id).inserted }
                .map { QueueRecord.dropped(id: $0.id, at: now, reason: $0.reason) }
            return (QueueStore.single(records), records.count)
        }
    }

    /// The error of a delivery refused before any request by the address rule (SPEC §6.3).
    public static let targetNotAllowed = "target address not allowed"

    // MARK: dead letters (`webhook dead ...`)

    public struct DeadLetter: Sendable, Equatable {
        public var id: DeliveryID
        public var eventID: String
        public var account: String
        public var instance: String
        public var label: WebhookLabel
        public var event: EventType
        public var attempts: UInt32
        public var lastError: String
        /// Unix microseconds.
        public var deadSince: UInt64

        public init(id: DeliveryID, eventID: String, account: String, instance: String, label: WebhookLabel, event: EventType,
                    attempts: UInt32, lastError: String, deadSince: UInt64) {
            self.id = id
            self.eventID = eventID
            self.account = account
            self.instance = instance
            self.label = label
            self.event = event
            self.attempts = attempts
            self.lastError = lastError
            self.deadSince = deadSince
        }
    }

    /// Dead letters, oldest number first; only those of instances named `instance` when given.
    public func deadLetters(instance: String? = nil) throws(StoreError) -> [DeadLetter] {
        try refresh()
        return read { queue in
            queue.dead.values
                .filter { instance == nil || $0.event.instance == instance }
                .sorted { $0.id < $1.id }
                .map { d in
                    DeadLetter(id: d.id, eventID: d.event.id, account: d.event.account, instance: d.event.instance, label: d.label,
                               event: d.event.type, attempts: d.attempts, lastError: d.lastError, deadSince: d.deadSince ?? 0)
                }
        }
    }

    public enum DeadLetterError: Error, Equatable, CustomStringConvertible {
        /// Numbers that are not dead letters (nothing was changed).
        case notDead([DeliveryID])

        public var description: String {
            switch self {
            case .notDead(let ids):
                return "not in the dead-letter queue: \(ids.map(String.init).joined(separator: ", ")) (nothing was changed; see `webhook dead list`)"
            }
        }
    }

    /// Puts dead letters back in the queue with a fresh schedule, due now: the ones numbered
    /// `ids`, or every one when `ids` is nil. All or nothing: when one of `ids` is not a dead
    /// letter nothing changes. Returns how many were revived.
    public func retryDead(_ ids: [DeliveryID]?) throws -> Int {
        let now = clock.nowMicroseconds()
        return try log.write { queue throws(DeadLetterError) -> (QueueRecord?, Int) in
            let chosen: [DeliveryID]
            if let ids {
                let missing = ids.filter { queue.dead[$0] == nil }
                if !missing.isEmpty { throw .notDead(missing) }
                chosen = Array(Set(ids)).sorted()
            } else {
                chosen = queue.dead.keys.sorted()
            }
            return (QueueStore.single(chosen.map { .revived(id: $0, at: now) }), chosen.count)
        }
    }

    /// Removes dead letters for good: those dead for longer than `olderThan` microseconds, or
    /// every one. Returns how many.
    public func purgeDead(olderThan: UInt64? = nil) throws -> Int {
        let now = clock.nowMicroseconds()
        return try log.write { queue -> (QueueRecord?, Int) in
            let chosen = queue.dead.values
                .filter { d in olderThan.map { (d.deadSince ?? 0) &+ $0 <= now } ?? true }
                .map(\.id).sorted()
            return (QueueStore.single(chosen.map { .purged(id: $0) }), chosen.count)
        }
    }

    /// nil for none, the record itself for one, a batch for more.
    static func single(_ records: [QueueRecord]) -> QueueRecord? {
        switch records.count {
        case 0: return nil
        case 1: return records[0]
        default: return .batch(records)
        }
    }

    // MARK: status

    /// The six figures of the status page's `delivery` object, from this process's view of the
    /// queue (brought up to date first) and the deliverer's shared counters.
    public func status() -> DeliveryStatus {
        try? refresh()
        let (queued, retrying, dead) = read { ($0.queuedCount, $0.retryingCount, $0.dead.count) }
        return DeliveryStatus(queued: queued, inFlight: Int(counters.inFlight), delivered: Int(counters.delivered),
                              retrying: retrying, dead: dead, dropped: Int(counters.dropped))
    }
}

extension QueueStore.Outcome {
    var isDrop: Bool {
        if case .dropped = self { return true }
        return false
    }
}

/// The delivery queue on a worker's status page (SPEC §6.3).
public struct DeliveryStatus: Sendable, Equatable {
    /// Pending deliveries not yet tried (or revived), in flight or not.
    public var queued: Int
    /// Attempts being made now by the deliverer.
    public var inFlight: Int
    /// Deliveries answered with a 2xx, since the counters file was made.
    public var delivered: Int
    /// Pending deliveries with at least one failed attempt.
    public var retrying: Int
    /// Dead letters.
    public var dead: Int
    /// Deliveries dropped because their label or instance went away, since the counters file was made.
    public var dropped: Int

    public init(queued: Int, inFlight: Int, delivered: Int, retrying: Int, dead: Int, dropped: Int) {
        self.queued = queued
        self.inFlight = inFlight
        self.delivered = delivered
        self.retrying = retrying
        self.dead = dead
        self.dropped = dropped
    }

    public static let zero = DeliveryStatus(queued: 0, inFlight: 0, delivered: 0, retrying: 0, dead: 0, dropped: 0)
}
