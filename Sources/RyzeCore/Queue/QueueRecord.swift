/// `deliveries.log`: the durable webhook delivery queue (queue_format.md beside this file). It
/// shares the framing of `events.log`; only the magic, the records and their size limit differ.
/// An event body may be 1 MiB (SPEC §6.1) and its envelope a little more, hence 4 MiB.
extension LogKind {
    public static let deliveries = LogKind(name: "deliveries", magic: "RYZEQUE\u{1}", version: 1, maxPayload: 4 << 20)
}

/// A delivery's number in the queue: given when its event is queued, never reused (compaction
/// keeps the next number in a `nextID` record), shown by `webhook dead list` and taken by
/// `webhook dead retry`.
public typealias DeliveryID = UInt64

/// One change to the delivery queue. Times are Unix microseconds; attempts count from 1.
public enum QueueRecord: LogEntry, Equatable {
    /// An event and its deliveries, one per label (`ids[k]` is the delivery to `event.labels[k]`),
    /// each due at once.
    case queued(event: QueuedEvent, ids: [DeliveryID])
    /// Attempt `attempt` failed at `at`; the next one is due at `nextDue`.
    case attemptFailed(id: DeliveryID, attempt: UInt32, at: UInt64, nextDue: UInt64, error: String)
    /// A 2xx answered attempt `attempt`: the delivery leaves the queue.
    case delivered(id: DeliveryID, attempt: UInt32, at: UInt64, status: UInt16)
    /// To the dead-letter queue after `attempts` attempts (0 when the target was refused before
    /// any request), with the last error.
    case dead(id: DeliveryID, attempts: UInt32, at: UInt64, error: String)
    /// Never sent: its label was disabled or deleted, or its instance deleted. It leaves the queue.
    case dropped(id: DeliveryID, at: UInt64, reason: String)
    /// `webhook dead retry`: a dead delivery back in the queue with a fresh schedule, due at `at`.
    case revived(id: DeliveryID, at: UInt64)
    /// `webhook dead purge`: a dead delivery removed for good.
    case purged(id: DeliveryID)
    /// Written first by compaction: the next delivery number, so that numbers of deliveries
    /// compacted away are never given again.
    case nextID(DeliveryID)
    /// Several records in one frame, applied together or not at all. Never nested.
    case batch([QueueRecord])

    // Type tags are part of the on-disk format (queue_format.md): never renumber.
    enum Tag: UInt8 {
        case queued = 1, attemptFailed = 2, delivered = 3, dead = 4, dropped = 5, revived = 6, purged = 7, nextID = 8, batch = 9
        /// `queued` with each delivery's label generation after its label; written only when one
        /// of them is not 0, so an event queued for labels from before generations keeps type 1.
        case queuedWithGenerations = 10
    }

    /// Error texts and reasons are cut to this many bytes: they are for people, and a receiver's
    /// words must not grow the queue.
    public static let maxTextBytes = 300

    public func encode() -> [UInt8] {
        var w = ByteWriter()
        switch self {
        case let .queued(event, ids):
            precondition(ids.count == event.labels.count && !ids.isEmpty && ids.count <= Int(UInt8.max))
            let withGenerations = event.generations.contains { $0 != 0 }
            w.u8(withGenerations ? Tag.queuedWithGenerations.rawValue : Tag.queued.rawValue)
            w.string(event.id); w.string(event.account); w.string(event.instance)
            w.u8(event.event.rawValue); w.u64(event.queuedAt)
            w.u8(UInt8(ids.count))
            for (k, id) in ids.enumerated() {
                w.u64(id); w.string(event.labels[k].name)
                if withGenerations { w.u64(event.generations[k]) }
            }
            w.u32(UInt32(event.envelope.count))
            w.bytes.append(contentsOf: event.envelope)
        case let .attemptFailed(id, attempt, at, nextDue, error):
            w.u8(Tag.attemptFailed.rawValue); w.u64(id); w.u32(attempt); w.u64(at); w.u64(nextDue); w.string(QueueRecord.cut(error))
        case let .delivered(id, attempt, at, status):
            w.u8(Tag.delivered.rawValue); w.u64(id); w.u32(attempt); w.u64(at); w.u16(status)
        case let .dead(id, attempts, at, error):
            w.u8(Tag.dead.rawValue); w.u64(id); w.u32(attempts); w.u64(at); w.string(QueueRecord.cut(error))
        case let .dropped(id, at, reason):
            w.u8(Tag.dropped.rawValue); w.u64(id); w.u64(at); w.string(QueueRecord.cut(reason))
        case let .revived(id, at):
            w.u8(Tag.revived.rawValue); w.u64(id); w.u64(at)
        case let .purged(id):
            w.u8(Tag.purged.rawValue); w.u64(id)
        case let .nextID(id):
            w.u8(Tag.nextID.rawValue); w.u64(id)
        case .batch(let records):
            precondition(!records.isEmpty && records.count <= Int(UInt32.max))
            w.u8(Tag.batch.rawValue); w.u32(UInt32(records.count))
            for r in records {
                precondition(!r.isBatch, "batches are never nested")
                let payload = r.encode()
                w.u32(UInt32(payload.count))
                w.bytes.append(contentsOf: payload)
            }
        }
        return w.bytes
    }

    var isBatch: Bool {
        if case .batch = self { return true }
        return false
    }

    /// nil when the payload is not a record this version understands: damage.
    public static func decode(_ payload: UnsafeRawBufferPointer) -> QueueRecord? {
        var r = ByteReader(payload)
        guard let raw = r.u8(), let tag = Tag(rawValue: raw) else { return nil }
        let record: QueueRecord?
        switch tag {
        case .queued, .queuedWithGenerations:
            guard let eventID = r.string(), let account = r.string(), let instance = r.string(),
                  let type = r.u8().flatMap(EventType.init(rawValue:)), let queuedAt = r.u64(),
                  let count = r.u8(), count > 0 else { return nil }
            var ids: [DeliveryID] = []
            var labels: [WebhookLabel] = []
            var generations: [UInt64] = []
            for _ in 0..<count {
                guard let id = r.u64(), let label = r.string().flatMap(WebhookLabel.init) else { return nil }
                ids.append(id)
                labels.append(label)
                if tag == .queuedWithGenerations {
                    guard let generation = r.u64() else { return nil }
                    generations.append(generation)
                } else {
                    generations.append(0)
                }
            }
            guard let n = r.u32().map(Int.init), let envelope = r.bytes(n) else { return nil }
            record = .queued(event: QueuedEvent(id: eventID, account: account, instance: instance, event: type,
                                                envelope: Array(envelope), labels: labels, generations: generations,
                                                queuedAt: queuedAt), ids: ids)
        case .attemptFailed:
            guard let id = r.u64(), let attempt = r.u32(), let at = r.u64(), let due = r.u64(), let error = r.string() else { return nil }
            record = .attemptFailed(id: id, attempt: attempt, at: at, nextDue: due, error: error)
        case .delivered:
            guard let id = r.u64(), let attempt = r.u32(), let at = r.u64(), let status = r.u16() else { return nil }
            record = .delivered(id: id, attempt: attempt, at: at, status: status)
        case .dead:
            guard let id = r.u64(), let attempts = r.u32(), let at = r.u64(), let error = r.string() else { return nil }
            record = .dead(id: id, attempts: attempts, at: at, error: error)
        case .dropped:
            guard let id = r.u64(), let at = r.u64(), let reason = r.string() else { return nil }
            record = .dropped(id: id, at: at, reason: reason)
        case .revived:
            guard let id = r.u64(), let at = r.u64() else { return nil }
            record = .revived(id: id, at: at)
        case .purged:
            guard let id = r.u64() else { return nil }
            record = .purged(id: id)
        case .nextID:
            guard let id = r.u64() else { return nil }
            record = .nextID(id)
        case .batch:
            guard let count = r.u32(), count > 0 else { return nil }
            var records: [QueueRecord] = []
            for _ in 0..<count {
                guard let n = r.u32().map(Int.init), let inner = r.bytes(n),
                      let decoded = QueueRecord.decode(inner), !decoded.isBatch else { return nil }
                records.append(decoded)
            }
            record = .batch(records)
        }
        return r.atEnd ? record : nil
    }

    /// At most `maxTextBytes` bytes of `s`, cut on a character boundary.
    public static func cut(_ s: String) -> String {
        guard s.utf8.count > maxTextBytes else { return s }
        var out = ""
        for c in s {
            if out.utf8.count + String(c).utf8.count > maxTextBytes { break }
            out.append(c)
        }
        return out
    }
}

extension ByteWriter {
    mutating func u64(_ v: UInt64) { for k in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(k)))) } }
}

extension ByteReader {
    mutating func u64() -> UInt64? {
        guard i + 8 <= buf.count else { return nil }
        defer { i += 8 }
        return UInt64(littleEndian: buf.loadUnaligned(fromByteOffset: i, as: UInt64.self))
    }
}

/// One line per record, for logs and tests: never the envelope, which may hold personal data;
/// its size only.
extension QueueRecord: CustomStringConvertible {
    public var description: String {
        switch self {
        case let .queued(e, ids):
            let pairs = zip(ids, e.labels).map { "\($0)=\($1.name)" }.joined(separator: ",")
            return "queued event=\(e.id) account=\(e.account) instance=\(e.instance) type=\(e.event.name) at=\(e.queuedAt) deliveries=[\(pairs)] envelope_bytes=\(e.envelope.count)"
        case let .attemptFailed(id, attempt, at, due, error):
            return "attempt.failed id=\(id) attempt=\(attempt) at=\(at) next_due=\(due) error=\(error)"
        case let .delivered(id, attempt, at, status): return "delivered id=\(id) attempt=\(attempt) at=\(at) status=\(status)"
        case let .dead(id, attempts, at, error): return "dead id=\(id) attempts=\(attempts) at=\(at) error=\(error)"
        case let .dropped(id, at, reason): return "dropped id=\(id) at=\(at) reason=\(reason)"
        case let .revived(id, at): return "revived id=\(id) at=\(at)"
        case let .purged(id): return "purged id=\(id)"
        case let .nextID(id): return "next_id \(id)"
        case .batch(let records): return "batch [" + records.map(\.description).joined(separator: "; ") + "]"
        }
    }
}
