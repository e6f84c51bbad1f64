#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import RyzeCore

@Suite struct DeliveryQueueTests {
    static func event(_ id: String, labels: [String] = ["default"], instance: String = "shop", at: UInt64 = 1_000,
                      body: String = #"{"event":"message.exchange","data":{}}"#) -> QueuedEvent {
        QueuedEvent(id: id, account: "acme", instance: instance, event: .messageExchange, envelope: Array(body.utf8),
                    labels: labels.map { WebhookLabel($0)! }, queuedAt: at)
    }

    static let samples: [QueueRecord] = [
        .queued(event: event("evt_1", labels: ["default", "crm"]), ids: [1, 2]),
        .attemptFailed(id: 1, attempt: 1, at: 2_000, nextDue: 7_000, error: "HTTP 500"),
        .delivered(id: 2, attempt: 1, at: 2_100, status: 204),
        .dead(id: 1, attempts: 10, at: 9_000, error: "timed out"),
        .dropped(id: 3, at: 9_500, reason: "label disabled"),
        .revived(id: 1, at: 10_000),
        .purged(id: 1),
        .nextID(42),
        .batch([.purged(id: 5), .revived(id: 6, at: 11)]),
    ]

    @Test func recordsRoundTrip() {
        for r in Self.samples {
            let bytes = r.encode()
            #expect(bytes.withUnsafeBytes { QueueRecord.decode($0) } == r)
            #expect((bytes + [0]).withUnsafeBytes { QueueRecord.decode($0) } == nil)
            #expect(bytes.dropLast().withUnsafeBytes { QueueRecord.decode($0) } == nil)
        }
        // A batch inside a batch is damage, not a record.
        var nested = ByteWriter()
        nested.u8(QueueRecord.Tag.batch.rawValue); nested.u32(1)
        let inner = QueueRecord.batch([.purged(id: 1)]).encode()
        nested.u32(UInt32(inner.count)); nested.bytes += inner
        #expect(nested.bytes.withUnsafeBytes { QueueRecord.decode($0) } == nil)
    }

    @Test func generationsAreType10AndSurviveCompaction() throws {
        var e = Self.event("evt_g", labels: ["default", "crm"])
        let plain = QueueRecord.queued(event: e, ids: [1, 2])
        e.generations = [0, 0x0102_0304_0506_0708]
        let with = QueueRecord.queued(event: e, ids: [1, 2])
        #expect(plain.encode().first == 1 && with.encode().first == 10)
        for r in [plain, with] {
            let bytes = r.encode()
            #expect(bytes.withUnsafeBytes { QueueRecord.decode($0) } == r)
            #expect((bytes + [0]).withUnsafeBytes { QueueRecord.decode($0) } == nil)
            #expect(bytes.dropLast().withUnsafeBytes { QueueRecord.decode($0) } == nil)
        }
        var q = DeliveryQueue()
        q.apply(with)
        #expect(q.pending[2]?.labelGeneration == 0x0102_0304_0506_0708 && q.pending[1]?.labelGeneration == 0)
        var compacted = DeliveryQueue()
        for r in q.liveRecords { compacted.apply(r) }
        #expect(compacted.pending.mapValues(\.labelGeneration) == q.pending.mapValues(\.labelGeneration))
    }

    @Test func longErrorsAreCutOnACharacterBoundary() {
        let long = String(repeating: "é", count: 400)
        let r = QueueRecord.attemptFailed(id: 1, attempt: 1, at: 0, nextDue: 0, error: long)
        guard case .attemptFailed(_, _, _, _, let error)? = r.encode().withUnsafeBytes({ QueueRecord.decode($0) }) else {
            Issue.record("did not decode"); return
        }
        #expect(error.utf8.count == 300)
        #expect(error == String(repeating: "é", count: 150))
    }

    @Test func theJournalNamesEveryChangeToAPendingDelivery() {
        var q = DeliveryQueue()
        let start = q.changeCursor
        q.apply(.queued(event: Self.event("evt_1", labels: ["default", "crm"]), ids: [1, 2]))
        q.apply(.attemptFailed(id: 1, attempt: 1, at: 2_000, nextDue: 7_000, error: "HTTP 500"))
        let mid = q.changeCursor
        q.apply(.delivered(id: 2, attempt: 1, at: 2_100, status: 204))
        q.apply(.dead(id: 1, attempts: 2, at: 9_000, error: "HTTP 500"))
        q.apply(.purged(id: 1))          // a dead letter: not pending, not in the journal
        q.apply(.nextID(50))
        q.apply(.batch([.queued(event: Self.event("evt_2"), ids: [7]), .dropped(id: 7, at: 1, reason: "label disabled")]))
        #expect(q.changedIDs(since: start).map(Array.init) == [1, 2, 1, 2, 1, 7, 7])
        #expect(q.changedIDs(since: mid).map(Array.init) == [2, 1, 7, 7])
        #expect(q.changedIDs(since: q.changeCursor)?.isEmpty == true)
        #expect(q.changedIDs(since: q.changeCursor + 1) == nil)
        #expect(DeliveryQueue().generation != q.generation, "a state replayed anew has journal positions of its own")

        // Past its limit the oldest half is forgotten: a reader that far behind reads it all.
        for k in 0..<70_000 { q.apply(.attemptFailed(id: 99, attempt: 1, at: 0, nextDue: UInt64(k), error: "")) }   // not pending: no change
        #expect(q.changedIDs(since: start) != nil)
        for k in 0..<35_000 {
            q.apply(.queued(event: Self.event("evt_n\(k)"), ids: [DeliveryID(100 + k)]))
            q.apply(.dropped(id: DeliveryID(100 + k), at: 0, reason: "x"))
        }
        #expect(q.changedIDs(since: start) == nil)
        #expect(q.changedIDs(since: q.changeCursor - 10)?.count == 10)
    }

    @Test func stateFollowsADeliveryThroughItsLife() {
        var q = DeliveryQueue()
        q.apply(.queued(event: Self.event("evt_1", labels: ["default", "crm"]), ids: [1, 2]))
        #expect(q.pending.count == 2 && q.queuedCount == 2 && q.retryingCount == 0 && q.nextID == 3)
        #expect(q.pending[1]?.nextDue == 1_000 && q.pending[1]?.event === q.pending[2]?.event)

        q.apply(.attemptFailed(id: 1, attempt: 1, at: 2_000, nextDue: 7_000, error: "HTTP 500"))
        #expect(q.queuedCount == 1 && q.retryingCount == 1)
        #expect(q.pending[1]?.attempts == 1 && q.pending[1]?.nextDue == 7_000 && q.pending[1]?.lastError == "HTTP 500")

        q.apply(.delivered(id: 2, attempt: 1, at: 2_100, status: 200))
        #expect(q.pending[2] == nil && q.queuedCount == 0)

        q.apply(.dead(id: 1, attempts: 10, at: 9_000, error: "timed out"))
        #expect(q.pending.isEmpty && q.retryingCount == 0 && q.dead[1]?.deadSince == 9_000 && q.dead[1]?.attempts == 10)

        // Records that do not fit are skipped: a dead letter is neither delivered nor failed.
        q.apply(.delivered(id: 1, attempt: 11, at: 9_100, status: 200))
        q.apply(.attemptFailed(id: 1, attempt: 11, at: 9_100, nextDue: 1, error: "x"))
        #expect(q.dead[1] != nil && q.pending.isEmpty)

        q.apply(.revived(id: 1, at: 10_000))
        #expect(q.dead.isEmpty && q.pending[1]?.attempts == 0 && q.pending[1]?.nextDue == 10_000 && q.pending[1]?.lastError == "")
        #expect(q.queuedCount == 1)

        q.apply(.dead(id: 1, attempts: 3, at: 11_000, error: "HTTP 404"))
        q.apply(.purged(id: 1))
        #expect(q.dead.isEmpty && q.pending.isEmpty && q.nextID == 3)
        #expect(q.liveRecordCount == 1 && q.liveRecords == [.nextID(3)])
        #expect(q.recordCount == 9)
    }

    @Test func compactionKeepsPendingAndDeadOnly() {
        var q = DeliveryQueue()
        q.apply(.queued(event: Self.event("a", labels: ["l1", "l2", "l3"]), ids: [1, 2, 3]))
        q.apply(.queued(event: Self.event("b"), ids: [4]))
        q.apply(.queued(event: Self.event("c"), ids: [5]))
        q.apply(.delivered(id: 1, attempt: 1, at: 1, status: 200))
        q.apply(.attemptFailed(id: 2, attempt: 2, at: 1, nextDue: 9_999, error: "HTTP 503"))
        q.apply(.dead(id: 3, attempts: 10, at: 77, error: "timed out"))
        q.apply(.dropped(id: 4, at: 1, reason: "label deleted"))
        q.apply(.queued(event: Self.event("d"), ids: [6]))
        q.apply(.delivered(id: 6, attempt: 1, at: 1, status: 200))
        let live = q.liveRecords
        #expect(live.count == q.liveRecordCount)
        #expect(live == [
            .nextID(7),
            .queued(event: Self.event("a", labels: ["l2", "l3"]), ids: [2, 3]),
            .attemptFailed(id: 2, attempt: 2, at: 9_999, nextDue: 9_999, error: "HTTP 503"),
            .dead(id: 3, attempts: 10, at: 77, error: "timed out"),
            .queued(event: Self.event("c"), ids: [5]),
        ])
        var replayed = DeliveryQueue()
        for r in live { replayed.apply(r) }
        #expect(replayed.nextID == 7 && replayed.queuedCount == 1 && replayed.retryingCount == 1 && replayed.dead.count == 1)
        #expect(replayed.pending[2]?.attempts == 2 && replayed.pending[2]?.nextDue == 9_999 && replayed.pending[2]?.lastError == "HTTP 503")
        #expect(replayed.dead[3]?.deadSince == 77 && replayed.liveRecords == live)
    }

    @Test func storeQueuesDurablyAndNumbersNeverRepeat() throws {
        let dir = TempDirectory()
        let clock = ManualClock()
        let a = try QueueStore(directory: dir.path, clock: clock.wallClock)
        try a.enqueue(Self.event("e1", labels: ["default", "crm"]))
        try a.enqueue(Self.event("e2", labels: []))   // nothing to deliver: nothing written
        try a.enqueue(Self.event("e3"))
        #expect(a.read { $0.pending.keys.sorted() } == [1, 2, 3])

        // Another "process" sees them, delivers them all, and compacts: the next number is kept.
        let b = try QueueStore(directory: dir.path, clock: clock.wallClock)
        #expect(b.read { $0.pending.count } == 3)
        for id: DeliveryID in 1...3 { #expect(try b.record(.delivered(status: 200), for: id, attempt: 1)) }
        _ = try b.log.compact()
        try a.refresh()
        #expect(a.read { $0.pending.isEmpty })
        try a.enqueue(Self.event("e4"))
        #expect(a.read { $0.pending.keys.sorted() } == [4])
        let reopened = try QueueStore(directory: dir.path)
        #expect(reopened.read { $0.pending[4]?.event.id } == "e4")
    }

    @Test func attemptsAreRecordedOnceInOrder() throws {
        let dir = TempDirectory()
        let clock = ManualClock()
        let q = try QueueStore(directory: dir.path, clock: clock.wallClock)
        try q.enqueue(Self.event("e1"))
        #expect(try q.record(.retry(error: "HTTP 500", nextDue: 5), for: 1, attempt: 1))
        // The same attempt recorded twice, or one skipped: refused, nothing written.
        #expect(try !q.record(.retry(error: "HTTP 500", nextDue: 5), for: 1, attempt: 1))
        #expect(try !q.record(.delivered(status: 200), for: 1, attempt: 3))
        #expect(try q.record(.dead(error: "HTTP 404"), for: 1, attempt: 2))
        #expect(q.read { $0.dead[1]?.attempts } == 2)
        #expect(try !q.record(.delivered(status: 200), for: 1, attempt: 3))

        try q.enqueue(Self.event("e2"))
        #expect(try q.record(.refused(error: QueueStore.targetNotAllowed), for: 2, attempt: 1))
        #expect(q.read { $0.dead[2]?.attempts } == 0)
        #expect(q.read { $0.dead[2]?.lastError } == "target address not allowed")

        try q.enqueue(Self.event("e3"))
        try q.enqueue(Self.event("e4"))
        #expect(try q.drop([(3, "label disabled"), (4, "instance deleted"), (99, "gone")]) == 2)
        #expect(q.read { $0.pending.isEmpty })
    }

    @Test func outcomesRecordedTogetherAreOneRecord() throws {
        let dir = TempDirectory()
        let q = try QueueStore(directory: dir.path, clock: ManualClock().wallClock)
        try q.enqueue(Self.event("e1", labels: ["a", "b", "c"]))
        let before = q.read { $0.recordCount }
        let answers = try q.record([
            (.delivered(status: 204), 1, 1),
            (.retry(error: "HTTP 500", nextDue: 9), 2, 1),
            (.delivered(status: 200), 1, 1),     // named twice: recorded once
            (.delivered(status: 200), 3, 2),     // not its next attempt
            (.delivered(status: 200), 99, 1),    // not pending
        ])
        #expect(answers == [true, true, false, false, false])
        #expect(q.read { $0.recordCount } == before + 1, "one batch record, one append")
        #expect(q.read { $0.pending[1] == nil && $0.pending[2]?.attempts == 1 && $0.pending[3]?.attempts == 0 })
        #expect(try q.record([]).isEmpty)
        #expect(try q.drop([(3, "label disabled"), (3, "label disabled")]) == 1, "a delivery named twice is dropped once")
    }

    @Test func deadLettersListRetryAndPurge() throws {
        let dir = TempDirectory()
        let clock = ManualClock()
        let q = try QueueStore(directory: dir.path, clock: clock.wallClock)
        for (k, instance) in ["shop", "desk", "shop"].enumerated() {
            try q.enqueue(Self.event("e\(k)", instance: instance))
            #expect(try q.record(.dead(error: "HTTP 410"), for: DeliveryID(k + 1), attempt: 1))
            clock.advance(3_600_000_000)
        }
        #expect(try q.deadLetters().map(\.id) == [1, 2, 3])
        #expect(try q.deadLetters(instance: "shop").map(\.eventID) == ["e0", "e2"])
        let first = try q.deadLetters()[0]
        #expect(first.account == "acme" && first.label == .default && first.attempts == 1 && first.lastError == "HTTP 410")

        // All or nothing.
        #expect(throws: QueueStore.DeadLetterError.notDead([7])) { try q.retryDead([1, 7]) }
        #expect(q.read { $0.dead.count } == 3)
        #expect(try q.retryDead([1, 1]) == 1)
        #expect(q.read { $0.pending[1]?.attempts } == 0 && q.read { $0.pending[1]?.nextDue } == clock.now)

        // Dead for more than 1.5 h: only the first of the two left (the other died an hour ago).
        #expect(try q.purgeDead(olderThan: 5_400_000_000) == 1)
        #expect(try q.deadLetters().map(\.id) == [3])
        #expect(try q.retryDead(nil) == 1)
        #expect(try q.purgeDead() == 0)
        #expect(q.status() == DeliveryStatus(queued: 2, inFlight: 0, delivered: 0, retrying: 0, dead: 0, dropped: 0))
    }

    @Test func countersAreSharedAndInFlightNeedsALiveDeliverer() throws {
        let dir = TempDirectory()
        let q = try QueueStore(directory: dir.path)
        let other = try DeliveryCounters(path: dir.path + "/deliveries.counters")
        other.claim(pid: getpid())
        other.countDelivered(); other.countDelivered(); other.countDropped(3)
        other.attemptStarted(); other.attemptStarted(); other.attemptEnded()
        #expect(q.status() == DeliveryStatus(queued: 0, inFlight: 1, delivered: 2, retrying: 0, dead: 0, dropped: 3))
        // A deliverer that is gone leaves no attempt in flight.
        other.claim(pid: 999_999_999)
        other.attemptStarted()
        #expect(q.status().inFlight == 0)
        other.claim(pid: getpid())
        other.release(pid: getpid())
        #expect(q.status().inFlight == 0 && q.status().delivered == 2)
    }

    @Test func concurrentEnqueuesShareSyncsAndGetDistinctNumbers() throws {
        let dir = TempDirectory()
        let q = try QueueStore(directory: dir.path)
        let threads = 8, each = 25
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for k in 0..<each { try! q.enqueue(Self.event("t\(t)-\(k)", labels: ["a", "b"])) }
        }
        let reopened = try QueueStore(directory: dir.path)
        #expect(reopened.read { $0.pending.count } == threads * each * 2)
        #expect(reopened.read { $0.nextID } == DeliveryID(threads * each * 2 + 1))
        #expect(reopened.read { $0.recordCount } == threads * each)
    }

    @Test func eventsLargerThanTheQueueTakesAreRefused() throws {
        let dir = TempDirectory()
        let q = try QueueStore(directory: dir.path)
        let big = String(repeating: "x", count: 4 << 20)
        #expect(throws: StoreError.self) { try q.enqueue(Self.event("big", body: big)) }
        let oneMiB = String(repeating: "y", count: 1 << 20)
        try q.enqueue(Self.event("ok", body: oneMiB))
        let reopened = try QueueStore(directory: dir.path)
        #expect(reopened.read { $0.pending[1]?.event.envelope.count } == 1 << 20)
    }
}
