import Foundation
import RyzeCore
import Testing
@testable import RyzePostgres

/// The delivery queue in PostgreSQL (schema migrations 3 and 4): claims with SKIP LOCKED, leases that
/// run out, outcomes, dead letters, and the copy of a one-host queue.
@Suite(.enabled(if: postgresBase != nil, "RYZE_TEST_POSTGRES_URL is not set"), .serialized)
struct PostgresQueueTests {
    static func event(_ id: String, labels: [String] = ["default"], instance: String = "shop") -> QueuedEvent {
        QueuedEvent(id: id, account: "acme", instance: instance, event: .messageExchange, envelope: Array("{\"event\":\"\(id)\"}".utf8),
                    labels: labels.map { WebhookLabel($0)! }, queuedAt: 0)
    }

    static func source(_ url: String, capacity: Int = 32, perLabel: Int = 1000, lease: Double = 45,
                       identity: String = UUID().uuidString) throws -> PostgresDeliverySource {
        var options = PostgresDeliverySource.Options(timeout: 15, concurrency: 16, perEndpoint: perLabel)
        options.capacity = capacity
        options.perLabel = perLabel
        options.leaseSeconds = lease
        options.idleClaimSeconds = 0
        let path = NSTemporaryDirectory() + "ryze-counters-" + UUID().uuidString
        return try PostgresDeliverySource(url: url, identity: identity, options: options, counters: DeliveryCounters(path: path))
    }

    static func held(_ s: PostgresDeliverySource) -> Set<DeliveryID> { s.read { Set($0.pending.keys) } }

    /// Every source at once, `rounds` times: claims, then records `delivering` of what it holds
    /// as delivered. Returns how many sources failed.
    static func claimAtOnce(_ sources: [PostgresDeliverySource], rounds: Int, delivering: Int) -> Int {
        let failures = Counter()
        DispatchQueue.concurrentPerform(iterations: sources.count) { k in
            do {
                for _ in 0..<rounds {
                    try sources[k].claim()
                    let some = Array(held(sources[k]).prefix(delivering))
                    try sources[k].record(some.map { (.delivered(status: 200), $0, 1) })
                }
            } catch { failures.add() }
        }
        return failures.value
    }

    /// No delivery is held by two sources.
    static func expectDisjoint(_ held: [Set<DeliveryID>]) {
        for a in 0..<held.count { for b in (a + 1)..<held.count { #expect(held[a].isDisjoint(with: held[b])) } }
    }

    @Test func anEnqueuedEventIsOneRowPerLabelAndCounted() throws {
        let url = try freshDatabase()
        let q = try PostgresQueue(url: url)
        try q.enqueue(Self.event("e1", labels: ["a", "b"]))
        try q.enqueue(Self.event("e2", labels: []))
        #expect(q.status() == DeliveryStatus(queued: 2, inFlight: 0, delivered: 0, retrying: 0, dead: 0, dropped: 0))
        let s = try Self.source(url)
        try s.refresh()
        let view = s.read { q in q.pending.values.map { ($0.event.id, $0.label.name, $0.event.envelope) } }
        #expect(Set(view.map(\.1)) == ["a", "b"])
        #expect(view.allSatisfy { $0.0 == "e1" && $0.2 == Array("{\"event\":\"e1\"}".utf8) })
        #expect(q.status().inFlight == 2)
    }

    @Test func claimersAtOnceNeverGetTheSameDelivery() throws {
        let url = try freshDatabase()
        let q = try PostgresQueue(url: url)
        for i in 0..<400 { try q.enqueue(Self.event("e\(i)", labels: ["l\(i % 50)"])) }
        let sources = try (0..<4).map { _ in try Self.source(url, capacity: 60) }
        #expect(Self.claimAtOnce(sources, rounds: 6, delivering: 10) == 0)
        let held = sources.map(Self.held)
        Self.expectDisjoint(held)
        let delivered = 4 * 6 * 10
        #expect(held.map(\.count).reduce(0, +) == 400 - delivered)
        let c = try PGConnection.connect(url: url, deadline: .after(milliseconds: 5000))
        let rows = try c.execute("SELECT count(*)::int8, count(DISTINCT lease_holder)::int8 FROM ryze_deliveries", deadline: .after(milliseconds: 5000))
        #expect(rows.int(0, 0) == Int64(400 - delivered))
        #expect(rows.int(0, 1) == 4)
        #expect(q.status().delivered == delivered)
    }

    @Test func eachDeliveryKeepsItsLabelsGenerationAndOldRowsMigrateTo0() throws {
        let url = try freshDatabase()
        let c = try PGConnection.connect(url: url, deadline: .after(milliseconds: 5000))
        // A row queued by the binary before migration 5 (no generation column yet).
        #expect(try Migrator.migrate(c, logger: .init(label: "test"), upTo: 4) == [1, 2, 3, 4])
        try Self.backlog(c, label: "old", count: 1, secondsAgo: 5)
        let q = try PostgresQueue(url: url)   // migrates to the latest
        var e = Self.event("g1", labels: ["a", "b"])
        e.generations = [7, 0x7FFF_0000_0000_0001]
        try q.enqueue(e)
        var big = Self.event("g2", labels: ["c"])
        big.generations = [UInt64.max]   // stored as a negative int8, read back the same
        try q.enqueue(big)
        let s = try Self.source(url)
        try s.refresh()
        let seen = s.read { q in Dictionary(uniqueKeysWithValues: q.pending.values.map { ($0.label.name, $0.labelGeneration) }) }
        #expect(seen == ["old": 0, "a": 7, "b": 0x7FFF_0000_0000_0001, "c": UInt64.max])
    }

    @Test func aLeaseThatRanOutIsClaimedAgainAndTheOldHoldersOutcomeIsRefused() throws {
        let url = try freshDatabase()
        let q = try PostgresQueue(url: url)
        try q.enqueue(Self.event("e1"))
        let a = try Self.source(url, lease: 1)
        let b = try Self.source(url, lease: 1)
        try a.claim()
        #expect(Self.held(a).count == 1)
        let id = Self.held(a).first!
        #expect(try b.claim().gained == 0)   // leased to A
        // An attempt longer than what is left of the lease may not start.
        #expect(!a.mayAttempt(id, seconds: 15))
        usleep(1_200_000)
        #expect(try b.claim().gained == 1)
        #expect(Self.held(b) == [id])
        // A (presumed dead) comes back: its outcome is not recorded, and the delivery leaves its view.
        #expect(try a.record([(.delivered(status: 200), id, 1)]) == [false])
        #expect(Self.held(a).isEmpty)
        #expect(try b.record([(.delivered(status: 200), id, 1)]) == [true])
        #expect(q.status().queued == 0)
    }

    @Test func aRestartedDelivererTakesBackItsPredecessorsLeasesAtOnceAndNoOneElses() throws {
        let url = try freshDatabase()
        let q = try PostgresQueue(url: url)
        try q.enqueue(Self.event("e1"))
        try q.enqueue(Self.event("e2", instance: "other"))
        let dead = try Self.source(url, capacity: 1, identity: "aaaa")
        let elsewhere = try Self.source(url, capacity: 1, identity: "bbbb")
        try dead.claim()
        try elsewhere.claim()
        #expect(Self.held(dead).count == 1 && Self.held(elsewhere).count == 1)
        // A second live deliverer with the same identity (a copied data directory) is refused.
        #expect(throws: StoreError.self) { try Self.source(url, identity: "aaaa") }
        // The same data directory's next deliverer, once `dead` is gone (its sessions closed,
        // its lease never given back).
        dead.identityLock = nil
        let next = try Self.source(url, identity: "aaaa")
        #expect(next.takenBack == 1)
        #expect(try next.claim().gained == 1)
        #expect(Self.held(next) == Self.held(dead))
        // The predecessor's late outcome is refused; another directory's lease was left alone.
        #expect(try dead.record([(.delivered(status: 200), Self.held(dead).first!, 1)]) == [false])
        #expect(try next.claim().gained == 0)
        #expect(Self.held(elsewhere).count == 1)
    }

    @Test func renewingKeepsTheLeaseAndALostOneLeavesTheView() throws {
        let url = try freshDatabase()
        let q = try PostgresQueue(url: url)
        try q.enqueue(Self.event("e1"))
        try q.enqueue(Self.event("e2"))
        let a = try Self.source(url, lease: 1.5)
        let b = try Self.source(url, lease: 1.5)
        try a.claim()
        #expect(Self.held(a).count == 2)
        for _ in 0..<3 {
            usleep(700_000)
            try a.renew()
            #expect(try b.claim().gained == 0)
        }
        // B takes them after A stops renewing; A's next renewal finds them gone.
        usleep(1_700_000)
        #expect(try b.claim().gained == 2)
        try a.renew()
        #expect(Self.held(a).isEmpty)
    }

    @Test func retriesWaitDeadLettersAreListedRetriedAndPurged() throws {
        let url = try freshDatabase()
        let q = try PostgresQueue(url: url)
        try q.enqueue(Self.event("r"))
        try q.enqueue(Self.event("d"))
        try q.enqueue(Self.event("x"))
        let s = try Self.source(url)
        try s.claim()
        let byEvent = s.read { q in Dictionary(uniqueKeysWithValues: q.pending.values.map { ($0.event.id, $0.id) }) }
        let later = WallClock.system.nowMicroseconds() + 60_000_000
        let answers = try s.record([(.retry(error: "HTTP 500", nextDue: later), byEvent["r"]!, 1),
                                    (.dead(error: "HTTP 404"), byEvent["d"]!, 1),
                                    (.refused(error: QueueStore.targetNotAllowed), byEvent["x"]!, 1)])
        #expect(answers == [true, true, true])
        #expect(try s.claim().gained == 0)   // the retry is not due for a minute
        #expect(q.status() == DeliveryStatus(queued: 0, inFlight: 0, delivered: 0, retrying: 1, dead: 2, dropped: 0))
        let dead = try q.deadLetters(instance: nil)
        #expect(dead.map(\.eventID) == ["d", "x"])
        #expect(dead.map(\.attempts) == [1, 0])
        #expect(dead.map(\.lastError) == ["HTTP 404", QueueStore.targetNotAllowed])
        #expect(try q.deadLetters(instance: "other").isEmpty)
        #expect(throws: QueueStore.DeadLetterError.notDead([byEvent["r"]!])) { try q.retryDead([byEvent["d"]!, byEvent["r"]!]) }
        #expect(try q.retryDead([byEvent["d"]!]) == 1)
        #expect(try s.claim().gained == 1)
        #expect(s.read { $0.pending[byEvent["d"]!]?.attempts } == 0)
        #expect(try q.purgeDead(olderThan: 3_600_000_000) == 0)
        #expect(try q.purgeDead(olderThan: nil) == 1)
        #expect(try q.deadLetters(instance: nil).isEmpty)
    }

    @Test func aLabelHeldToItsBoundLeavesRoomForTheOthers() throws {
        let url = try freshDatabase()
        let q = try PostgresQueue(url: url)
        for i in 0..<200 { try q.enqueue(Self.event("stuck\(i)", labels: ["stuck"])) }
        for i in 0..<3 { try q.enqueue(Self.event("ok\(i)", labels: ["healthy"])) }
        let s = try Self.source(url, capacity: 8, perLabel: 4)
        try s.claim()
        let labels = s.read { q in q.pending.values.map(\.label.name) }
        #expect(labels.filter { $0 == "stuck" }.count == 4)
        #expect(labels.filter { $0 == "healthy" }.count == 3)
        // What went back is free for other deliverers.
        let c = try PGConnection.connect(url: url, deadline: .after(milliseconds: 5000))
        let leased = try c.execute("SELECT count(*)::int8 FROM ryze_deliveries WHERE lease_holder IS NOT NULL", deadline: .after(milliseconds: 5000))
        #expect(leased.int(0, 0) == 7)
    }

    /// `count` pending deliveries of `label` (instance "shop"), due from `secondsAgo` on, one
    /// millisecond apart: a backlog far quicker to make than by `enqueue`.
    static func backlog(_ c: PGConnection, label: String, count: Int, secondsAgo: Int) throws {
        try c.execute("""
            INSERT INTO ryze_deliveries (event_id, account, instance, label, event, envelope, due)
            SELECT $1 || g, 'acme', 'shop', $1, 1, '\\x7b7d'::bytea, now() - $3::int8 * interval '1 second' + g * interval '1 millisecond'
            FROM generate_series(1, $2::int8) g
            """, [.text(label), .int(Int64(count)), .int(Int64(secondsAgo))], deadline: .after(milliseconds: 10_000))
    }

    @Test func aLabelHeldAtItsBoundDoesNotHideTheOthersBehindItsBacklog() throws {
        let url = try freshDatabase()
        let q = try PostgresQueue(url: url)
        let c = try PGConnection.connect(url: url, deadline: .after(milliseconds: 5000))
        // The stuck endpoint's backlog is due before anything of the healthy one.
        try Self.backlog(c, label: "stuck", count: 5000, secondsAgo: 3600)
        for i in 0..<6 { try q.enqueue(Self.event("ok\(i)", labels: ["healthy"])) }
        let s = try Self.source(url, capacity: 8, perLabel: 4)
        try s.claim()
        func held(_ label: String) -> [DeliveryID] {
            s.read { q in q.pending.filter { $0.value.label.name == label }.map(\.key) }
        }
        #expect(held("stuck").count == 4)
        #expect(held("healthy").count == 4)
        // What went back of "stuck" (a first round in due order took 8 of it) is free again.
        let leased = try c.execute("SELECT count(*)::int8 FROM ryze_deliveries WHERE lease_holder IS NOT NULL", deadline: .after(milliseconds: 5000))
        #expect(leased.int(0, 0) == 8)
        // With "stuck" still at its bound, the next claims get the rest of "healthy".
        #expect(try s.record(held("healthy").map { (.delivered(status: 200), $0, 1) }) == [true, true, true, true])
        #expect(try s.claim().gained == 2)
        #expect(held("healthy").count == 2 && held("stuck").count == 4)
        #expect(try s.claim().gained == 0)
    }

    @Test func claimersAtOnceWithLabelsAtTheirBoundNeverGetTheSameDelivery() throws {
        let url = try freshDatabase()
        _ = try PostgresQueue(url: url)
        let c = try PGConnection.connect(url: url, deadline: .after(milliseconds: 5000))
        try Self.backlog(c, label: "stuck", count: 2000, secondsAgo: 3600)
        for k in 0..<20 { try Self.backlog(c, label: "l\(k)", count: 10, secondsAgo: 60 - k) }
        let sources = try (0..<4).map { _ in try Self.source(url, capacity: 24, perLabel: 3) }
        #expect(Self.claimAtOnce(sources, rounds: 4, delivering: 5) == 0)
        // One after the other (claims at once may find rows the others hold and come back short).
        for s in sources { try s.claim() }
        let held = sources.map(Self.held)
        Self.expectDisjoint(held)
        for s in sources {
            let perLabel = s.read { q in Dictionary(grouping: q.pending.values, by: \.label.name).mapValues(\.count) }
            #expect(perLabel.values.allSatisfy { $0 <= 3 })
            #expect(perLabel["stuck"] == 3)
            #expect(Self.held(s).count == 24)
        }
        let leased = try c.execute("SELECT count(*)::int8 FROM ryze_deliveries WHERE lease_holder IS NOT NULL", deadline: .after(milliseconds: 5000))
        #expect(leased.int(0, 0) == 4 * 24)
    }

    @Test func aClaimTakesTheOldestDueFirstAcrossLabels() throws {
        let url = try freshDatabase()
        _ = try PostgresQueue(url: url)
        let c = try PGConnection.connect(url: url, deadline: .after(milliseconds: 5000))
        try Self.backlog(c, label: "a", count: 3, secondsAgo: 30)   // due 30 s ago and after
        try Self.backlog(c, label: "b", count: 3, secondsAgo: 60)
        try Self.backlog(c, label: "c", count: 3, secondsAgo: 10)
        let s = try Self.source(url, capacity: 4, perLabel: 2)
        try s.claim()
        let ids = s.read { q in q.pending.values.map(\.event.id).sorted() }
        #expect(ids == ["a1", "a2", "b1", "b2"])
    }

    @Test func theClaimIndexIsAddedToADatabaseAtVersion3() throws {
        let url = try freshDatabase()
        let c = try PGConnection.connect(url: url, deadline: .after(milliseconds: 5000))
        // As the binary before migration 4 left it, with a backlog already queued.
        #expect(try Migrator.migrate(c, logger: .init(label: "test"), upTo: 3) == [1, 2, 3])
        try Self.backlog(c, label: "stuck", count: 100, secondsAgo: 60)
        try Self.backlog(c, label: "healthy", count: 2, secondsAgo: 1)
        let s = try Self.source(url, capacity: 4, perLabel: 2)
        #expect(try Migrator.migrate(c, logger: .init(label: "test")) == [])   // `source` applied it
        let index = try c.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'ryze_deliveries_label'", deadline: .after(milliseconds: 5000))
        #expect(index.rows == 1 && index.text(0, 0).contains("(account, instance, label, due) WHERE (dead IS NOT TRUE)"))
        let versions = try c.execute("SELECT max(version)::int8 FROM ryze_schema_migrations", deadline: .after(milliseconds: 5000))
        #expect(versions.int(0, 0) == Int64(Schema.latestVersion))
        try s.claim()
        #expect(Set(s.read { q in q.pending.values.map(\.label.name) }) == ["stuck", "healthy"])
        #expect(s.read { $0.pending.count } == 4)
    }

    @Test func theStatusOfALargeQueueIsCountedAtMostOnceASecond() throws {
        let url = try freshDatabase()
        var options = PostgresQueue.Options()
        options.statusCountedAlwaysBelow = 100
        let q = try PostgresQueue(url: url, options: options)
        let c = try PGConnection.connect(url: url, deadline: .after(milliseconds: 5000))
        // Below the threshold every request counts afresh.
        try Self.backlog(c, label: "a", count: 99, secondsAgo: 60)
        #expect(q.status().queued == 99)
        try q.enqueue(Self.event("e1"))
        #expect(q.status().queued == 100)
        // From there on, the figures are served for up to a second.
        try q.enqueue(Self.event("e2"))
        #expect(q.status().queued == 100)
        usleep(1_100_000)
        #expect(q.status().queued == 101)
    }

    @Test func aOneHostQueueIsCopiedWithItsAttemptsAndDeadLetters() throws {
        let url = try freshDatabase()
        let dir = NSTemporaryDirectory() + "ryze-q-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let local = try QueueStore(directory: dir)
        var p = Self.event("p", labels: ["a", "b"])
        p.generations = [11, 12]
        try local.enqueue(p)
        try local.enqueue(Self.event("d"))
        let ids = local.read { q in Dictionary(uniqueKeysWithValues: q.pending.values.map { ($0.event.id + $0.label.name, $0.id) }) }
        try local.record([(.retry(error: "HTTP 502", nextDue: 0), ids["pa"]!, 1), (.dead(error: "HTTP 410"), ids["ddefault"]!, 1)])
        let q = try PostgresQueue(url: url)
        let copied = try q.importQueue(local.read { $0 })
        #expect(copied.pending == 2 && copied.dead == 1)
        #expect(q.status() == DeliveryStatus(queued: 1, inFlight: 0, delivered: 0, retrying: 1, dead: 1, dropped: 0))
        #expect(try q.deadLetters(instance: "shop").map(\.lastError) == ["HTTP 410"])
        let s = try Self.source(url)
        try s.claim()
        let view = s.read { q in q.pending.values.map { ($0.label.name, $0.attempts, $0.lastError) }.sorted { $0.0 < $1.0 } }
        #expect(view.map(\.0) == ["a", "b"])
        #expect(view.map(\.1) == [1, 0])
        #expect(view[0].2 == "HTTP 502")
        #expect(s.read { q in q.pending.values.map(\.labelGeneration).sorted() } == [11, 12])
    }
}
