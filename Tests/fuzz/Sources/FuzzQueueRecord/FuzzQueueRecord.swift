import CLibFuzzer
import LogFuzzing
@testable import RyzeCore
#if canImport(Glibc)
import Glibc
#endif

/// fuzz-queuerecord: `deliveries.log`'s readers (`LogFuzzing` says what is checked), then the
/// records found folded into a `DeliveryQueue`, and compaction held to losing nothing: the
/// queue's `liveRecords` encode (no precondition trips), and replayed into a fresh queue they
/// give the same queue: the same pending and dead deliveries with the same events, attempts,
/// errors and times, the same next number and counts. (A pending delivery never tried since it
/// was queued or revived comes back due from its event's queue time: documented, and due at once
/// either way in real use, so its due time is not compared.)
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzQueueRecord(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var queue = DeliveryQueue()
    // A re-encoded record may differ from the decoded one only where encoding cuts error texts.
    LogFuzzing.run(UnsafeBufferPointer(start: data, count: size), kind: .deliveries, as: QueueRecord.self,
                   same: { $0 == $1 || $0.encode() == $1.encode() }) { queue.apply($0) }

    var compacted = DeliveryQueue()
    for record in queue.liveRecords {
        let bytes = record.encode()
        guard let decoded = bytes.withUnsafeBytes({ QueueRecord.decode($0) }), decoded == record else {
            fatalError("compaction wrote a record that does not read back: \(record)")
        }
        compacted.apply(decoded)
    }
    if let difference = differences(queue, compacted) { fatalError("compaction changed the queue: \(difference)") }
    return 0
}

func differences(_ a: DeliveryQueue, _ b: DeliveryQueue) -> String? {
    if a.nextID != b.nextID { return "nextID \(a.nextID) != \(b.nextID)" }
    if a.retryingCount != b.retryingCount || a.queuedCount != b.queuedCount { return "counts" }
    if a.liveRecordCount != b.liveRecordCount { return "liveRecordCount \(a.liveRecordCount) != \(b.liveRecordCount)" }
    for (name, x, y) in [("pending", a.pending, b.pending), ("dead", a.dead, b.dead)] {
        if Set(x.keys) != Set(y.keys) { return "\(name) ids \(x.keys.sorted()) != \(y.keys.sorted())" }
        for (id, d) in x {
            let e = y[id]!
            if d.label != e.label || d.attempts != e.attempts || d.lastError != e.lastError || d.deadSince != e.deadSince {
                return "\(name) \(id): \(d) != \(e)"
            }
            if d.attempts > 0 && !d.isDead && d.nextDue != e.nextDue { return "\(name) \(id): due \(d.nextDue) != \(e.nextDue)" }
            let (p, q) = (d.event, e.event)
            if p.id != q.id || p.account != q.account || p.instance != q.instance || p.type != q.type
                || p.envelope != q.envelope || p.queuedAt != q.queuedAt { return "\(name) \(id): event differs" }
        }
    }
    // Deliveries that shared an event before share one after, and only those.
    func groups(_ q: DeliveryQueue) -> Set<[DeliveryID]> {
        var by: [ObjectIdentifier: [DeliveryID]] = [:]
        for d in Array(q.pending.values) + Array(q.dead.values) { by[ObjectIdentifier(d.event), default: []].append(d.id) }
        return Set(by.values.map { $0.sorted() })
    }
    if groups(a) != groups(b) { return "events shared differently" }
    return nil
}

@main enum FuzzQueueRecordMain {
    static func main() { exit(ryze_run_fuzzer(CommandLine.argc, CommandLine.unsafeArgv, fuzzQueueRecord)) }
}
