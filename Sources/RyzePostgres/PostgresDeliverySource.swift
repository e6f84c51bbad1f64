import Logging
import RyzeCore
#if canImport(Glibc)
import Glibc
#endif

/// A deliverer's share of the PostgreSQL queue (`deliver --store`, SPEC §7): what the
/// `Deliverer` schedules is the set of deliveries this deliverer holds a lease on, mirrored in a
/// local `DeliveryQueue` whose change journal the deliverer follows exactly as it follows the
/// data directory's queue.
///
/// Claims: `refresh` takes due deliveries whose lease is free or ran out, with `FOR UPDATE
/// SKIP LOCKED` so that deliverers claiming at once never wait for or take the same rows, and
/// leases them for `leaseSeconds` of the database's clock (longer than an attempt plus a
/// margin). It holds at most `capacity` deliveries and `perLabel` of one label (an endpoint
/// that is stuck or paused cannot take the whole share: a claim skips labels held that often
/// without walking their rows, however many are due (`claimPerLabel`), and what one claim took
/// beyond that goes straight back). Claims go oldest due first. Leases of the
/// deliveries held are renewed every `renewSeconds`; `mayAttempt` lets an attempt start only
/// while its lease, as last confirmed, outlasts the attempt, measured on this host's monotonic
/// clock from before the statement that set it, so that a deliverer cut off from PostgreSQL
/// stops starting attempts before another deliverer may claim them. A dead deliverer's leases
/// run out and its deliveries are claimed again (at least once, one deliverer at a time), or
/// are taken back at once by the next deliverer of its data directory (see `init`).
///
/// Outcomes: `record` writes a batch in one transaction (delivered and dropped rows deleted,
/// a retry with its new due time, a dead letter marked), each only while this deliverer still
/// holds the lease; a delivery it no longer holds is answered false and leaves the view.
///
/// `mutex` guards `mirror` and `leasedAt`; no statement runs while it is held. `refresh` runs
/// on the deliverer's scheduler thread only (it alone claims), `record` on its recorder.
public final class PostgresDeliverySource: DeliverySource, @unchecked Sendable {
    public struct Options: Sendable {
        public var leaseSeconds: Double
        public var renewSeconds: Double = 5
        /// Deliveries held at most (in flight or waiting for their endpoint).
        public var capacity: Int
        /// Deliveries of one label held at most.
        public var perLabel: Int
        /// Pause between claims that found nothing due.
        public var idleClaimSeconds: Double = 0.1
        public var queryTimeoutMilliseconds = 2000

        /// For a deliverer of `concurrency` senders and `perEndpoint` attempts per endpoint whose
        /// attempts last at most `timeout` seconds: a lease of the timeout plus 30 s, and twice
        /// what may be in flight held (so that senders find the next delivery at hand while the
        /// last ones' outcomes are written and more are claimed).
        public init(timeout: Double, concurrency: Int, perEndpoint: Int) {
            leaseSeconds = timeout + 30
            capacity = 2 * concurrency
            perLabel = 2 * perEndpoint
        }
    }

    public let counters: DeliveryCounters
    let options: Options
    /// This deliverer's name in `lease_holder`: `HOST/IDENTITY:PID:RANDOM`, the identity being
    /// its data directory's (`DeliverLock`), the pid and random part making a restarted process
    /// another holder (whose predecessor's late outcomes are refused).
    public let holder: String
    /// Leases taken back at start from this data directory's previous deliverer (see `init`).
    public private(set) var takenBack = 0
    /// The session holding the identity's advisory lock (see `init`); scheduler thread only
    /// after `init`. Nil only in tests (a deliverer that died).
    var identityLock: PGConnection?
    private let identityKey: String
    private var lastIdentityCheck = -Double.infinity
    /// The host's name, the key of its row in `ryze_delivery_stats`.
    let host: String
    let pool: ConnectionPool
    private let logger: Logger

    private let mutex = PlainMutex()
    private var mirror = DeliveryQueue()
    /// Deliveries left the view since the last claim: there is room again, claim at once.
    private var freed = false
    /// Monotonic seconds, taken before the statement that last set each held lease.
    private var leasedAt: [DeliveryID: Double] = [:]
    /// Scheduler thread only.
    private var lastRenew = -Double.infinity
    private var lastClaim = -Double.infinity
    /// The last claim found fewer due deliveries than it had room for: the next one waits
    /// `idleClaimSeconds`. A deliverer at capacity claims again as soon as it has room.
    private var drained = false

    /// `identity` is the data directory's deliverer identity, and the caller holds that
    /// directory's `DeliverLock`: so no other live process of this host leases under it, and the
    /// leases still held under it are a dead predecessor's (`kill -9`, a crash). They are given
    /// back here, before the first claim, rather than waited out (`--webhook-timeout` plus
    /// `--lease-margin`): a deliverer restarted by its supervisor goes on at once. An attempt the
    /// predecessor had under way is made again (at least once), as after a lease runs out.
    ///
    /// The file lock cannot see another machine: two hosts started from copies of one data
    /// directory under one host name would share the identity and take each other's live
    /// leases. So the identity is also a session advisory lock in PostgreSQL, held on a
    /// connection of its own for the process's life: a second live deliverer with the same
    /// identity is refused at start, and leases are taken back only under that lock.
    public init(url: String, identity: String, options: Options, counters: DeliveryCounters,
                logger: Logger = Logger(label: "ryze.queue")) throws(StoreError) {
        self.options = options
        self.counters = counters
        self.logger = logger
        var name = [CChar](repeating: 0, count: 256)
        host = gethostname(&name, 255) == 0 ? String(cString: name) : "unknown"
        let prefix = "\(host)/\(identity):"
        holder = prefix + "\(getpid()):\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        pool = ConnectionPool(url: url, maxIdle: 3)
        let deadline = Deadline.after(milliseconds: 5000)
        let c = try PGConnection.connect(url: url, deadline: deadline)
        try Migrator.migrate(c, logger: logger)
        identityKey = prefix
        guard try Self.lockIdentity(c, prefix, deadline: deadline) else {
            throw .unusable("another deliverer with this data directory's identity (\(prefix.dropLast())) is connected to PostgreSQL: "
                            + "hosts started from copies of one data directory? Remove deliver.lock on one of them (a new identity is made)")
        }
        identityLock = c
        // left(), not LIKE: a host name may hold '_', a LIKE wildcard.
        takenBack = try c.execute("""
            UPDATE ryze_deliveries SET lease_holder = NULL, lease_until = NULL
            WHERE left(lease_holder, length($1)) = $1 RETURNING id
            """, [.text(prefix)], deadline: deadline).rows
        if takenBack > 0 {
            logger.notice("took back the leases of this data directory's previous deliverer", metadata: ["deliveries": "\(takenBack)"])
        }
    }

    private static func lockIdentity(_ c: PGConnection, _ prefix: String, deadline: Deadline) throws(StoreError) -> Bool {
        try c.execute("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", [.text(prefix)], deadline: deadline).bool(0, 0)
    }

    /// The identity's session dies with its connection (a PostgreSQL restart): taken again on a
    /// new one, so that a copy of this data directory started later is still refused.
    private func keepIdentityLock() {
        let now = Self.now()
        guard now - lastIdentityCheck >= options.renewSeconds else { return }
        lastIdentityCheck = now
        guard identityLock?.looksAlive() != true else { return }
        let deadline = self.deadline
        do {
            let c = try PGConnection.connect(url: pool.url, deadline: deadline)
            if try Self.lockIdentity(c, identityKey, deadline: deadline) {
                identityLock = c
            } else {
                logger.error("another deliverer with this data directory's identity is connected to PostgreSQL (hosts started from copies of one data directory?); stop one and remove its deliver.lock",
                             metadata: ["identity": "\(identityKey.dropLast())"])
            }
        } catch {
            // PostgreSQL is away: the claims and renewals report it.
        }
    }

    private static func now() -> Double { Double(MonotonicClock.nanoseconds()) / 1e9 }
    private var deadline: Deadline { .after(milliseconds: options.queryTimeoutMilliseconds) }
    private var leaseMilliseconds: Int64 { Int64(options.leaseSeconds * 1000) }

    static func labelKey(account: String, instance: String, label: String) -> String {
        account + "\u{1F}" + instance + "\u{1F}" + label
    }

    /// Deliveries held now, by label key. Call with `mutex` held.
    private func heldPerLabel() -> [String: Int] {
        var perLabel: [String: Int] = [:]
        for d in mirror.pending.values {
            perLabel[Self.labelKey(account: d.event.account, instance: d.event.instance, label: d.label.name), default: 0] += 1
        }
        return perLabel
    }

    // MARK: DeliverySource

    public func read<T, E: Error>(_ body: (DeliveryQueue) throws(E) -> T) throws(E) -> T {
        try mutex.withLock { () throws(E) -> T in try body(mirror) }
    }

    public func mayAttempt(_ id: DeliveryID, seconds: Double) -> Bool {
        let at = mutex.withLock { leasedAt[id] }
        guard let at else { return false }
        return Self.now() + seconds + 5 < at + options.leaseSeconds
    }

    public func refresh() throws {
        keepIdentityLock()
        let now = Self.now()
        if now - lastRenew >= options.renewSeconds {
            try renew()
            lastRenew = now
        }
        let freedNow = mutex.withLock { () -> Bool in
            defer { freed = false }
            return freed
        }
        if !drained || freedNow || now - lastClaim >= options.idleClaimSeconds {
            lastClaim = now
            drained = try claim().drained
        }
    }

    /// Extends every held lease; those no longer held (run out and claimed by another
    /// deliverer) leave the view.
    func renew() throws {
        let ids = mutex.withLock { Array(mirror.pending.keys) }
        guard !ids.isEmpty else { return }
        let started = Self.now()
        let deadline = self.deadline
        let r = try pool.with(deadline: deadline) { c throws(StoreError) in
            try c.execute("""
                UPDATE ryze_deliveries SET lease_until = now() + $2::int8 * interval '1 millisecond'
                WHERE lease_holder = $1 AND id = ANY($3::int8[]) RETURNING id
                """, [.text(holder), .int(leaseMilliseconds), .intArray(ids.map { Int64(bitPattern: $0) })], deadline: deadline)
        }
        let kept = Set((0..<r.rows).map { DeliveryID(r.int($0, 0)) })
        // Not renewed: recorded meanwhile (then already out of the view, or about to be), or
        // run out and claimed by another deliverer.
        let lost = mutex.withLock { () -> [DeliveryID] in
            for id in kept where leasedAt[id] != nil { leasedAt[id] = started }
            let lost = ids.filter { !kept.contains($0) && leasedAt[$0] != nil }
            forget(lost)
            return lost
        }
        if !lost.isEmpty { logger.notice("leases not renewed: they ran out, or were being recorded", metadata: ["deliveries": "\(lost.count)"]) }
    }

    /// What both claims return of each row they lease, in the order `claim` reads them.
    static let claimedColumns =
        "d.id, d.event_id, d.account, d.instance, d.label, d.event::int8, d.envelope, d.attempts::int8, d.last_error, d.generation"

    /// The claim while this deliverer holds no label at its bound: the oldest due rows, in
    /// `due` order over `ryze_deliveries_due`, SKIP LOCKED (a row another claimer holds is passed
    /// over for the next). $1 the holder, $2 the lease in milliseconds, $3 the room left
    /// (`capacity` minus what it holds). It may take more of one label than `perLabel` allows:
    /// `claim` gives that surplus back and claims again, now with that label at its bound, so
    /// with `claimPerLabel`.
    static let claimInDueOrder = """
        UPDATE ryze_deliveries d SET lease_holder = $1, lease_until = now() + $2::int8 * interval '1 millisecond'
        WHERE d.id IN (
            SELECT id FROM ryze_deliveries
            WHERE NOT dead AND due <= now() AND (lease_until IS NULL OR lease_until < now())
            ORDER BY due LIMIT $3::int8
            FOR UPDATE SKIP LOCKED)
        RETURNING \(claimedColumns)
        """

    /// The claim while some label is held at its bound: the walk in `due` order would pass
    /// every due row of that label to skip it, a stuck endpoint's whole backlog on every claim.
    /// One statement (one round trip, one implicit transaction). $1 the holder, $2 the lease in
    /// milliseconds, $3 and $4 the labels this deliverer holds deliveries of (keys as
    /// `labelKey`) and how many of each, $5 the room left, $6 `perLabel`.
    ///
    /// It goes label by label over `ryze_deliveries_label` (migration 4): `labels` lists the
    /// labels with pending rows by a loose index scan (one index probe per label, however many
    /// rows each has), `open` keeps those with room left under `perLabel`, `heads` finds each
    /// one's oldest claimable row and keeps the $5 labels whose oldest is oldest (the $5 oldest
    /// claimable rows overall can only be theirs), and `picked` locks up to each label's room of
    /// its oldest rows, SKIP LOCKED, then keeps the $5 oldest across labels. So the claim never
    /// takes more of a label than its room, goes oldest due first across labels, and costs one
    /// probe per label with pending rows whatever their backlogs (`bench/pgclaim.py`: about 90
    /// ms for 5,000 such labels here, against a 200,000-row walk). Rows `picked` locked beyond
    /// its last LIMIT (at most $5 labels times their room) are unlocked, unleased, when the
    /// statement's transaction ends.
    ///
    /// `dead IS NOT TRUE` (not `NOT dead`), as in the index's predicate: it does not imply
    /// `ryze_deliveries_due`'s `NOT dead`, so the planner cannot take that index for a label's
    /// rows (it did, filtering a 200,000-row walk, when statistics made one label look like half
    /// the table). `dead` is never null, so both mean the same rows.
    static let claimPerLabel = """
        WITH RECURSIVE labels (account, instance, label) AS (
            (SELECT account, instance, label FROM ryze_deliveries WHERE dead IS NOT TRUE
             ORDER BY account, instance, label LIMIT 1)
            UNION ALL
            SELECT n.account, n.instance, n.label FROM labels l CROSS JOIN LATERAL (
                SELECT account, instance, label FROM ryze_deliveries
                WHERE dead IS NOT TRUE AND (account, instance, label) > (l.account, l.instance, l.label)
                ORDER BY account, instance, label LIMIT 1) n
        ), open AS (
            SELECT l.account, l.instance, l.label, LEAST($5::int8, $6::int8 - coalesce(h.held, 0)) AS room
            FROM labels l LEFT JOIN unnest($3::text[], $4::int8[]) AS h (key, held)
              ON h.key = l.account || chr(31) || l.instance || chr(31) || l.label
        ), heads AS (
            SELECT o.account, o.instance, o.label, o.room, f.due FROM open o CROSS JOIN LATERAL (
                SELECT due FROM ryze_deliveries
                WHERE dead IS NOT TRUE AND account = o.account AND instance = o.instance AND label = o.label
                  AND due <= now() AND (lease_until IS NULL OR lease_until < now())
                ORDER BY due LIMIT 1) f
            WHERE o.room > 0
            ORDER BY f.due LIMIT $5::int8
        ), picked AS (
            SELECT c.id, c.due FROM heads h CROSS JOIN LATERAL (
                SELECT id, due FROM (
                    SELECT id, due FROM ryze_deliveries
                    WHERE dead IS NOT TRUE AND account = h.account AND instance = h.instance AND label = h.label
                      AND due <= now() AND (lease_until IS NULL OR lease_until < now())
                    ORDER BY due LIMIT $6::int8
                    FOR UPDATE SKIP LOCKED) r
                LIMIT h.room) c
            ORDER BY c.due LIMIT $5::int8
        )
        UPDATE ryze_deliveries d SET lease_holder = $1, lease_until = now() + $2::int8 * interval '1 millisecond'
        FROM picked WHERE d.id = picked.id
        RETURNING \(claimedColumns)
        """

    /// Claims what there is room for; returns how many deliveries it now holds more, and
    /// whether the database had fewer due than there was room for.
    @discardableResult
    func claim() throws -> (gained: Int, drained: Bool) {
        var gained = 0
        var drained = false
        // A few rounds at most: a round that gave back a surplus of one label (taken in due
        // order) claims again with that label at its bound (per label).
        for _ in 0..<4 {
            let (room, held) = mutex.withLock { () -> (Int, [String: Int]) in
                (options.capacity - mirror.pending.count, heldPerLabel())
            }
            guard room > 0 else { break }
            let atBound = held.values.contains { $0 >= options.perLabel }
            let started = Self.now()
            let deadline = self.deadline
            let r = try pool.with(deadline: deadline) { c throws(StoreError) in
                if atBound {
                    try c.execute(Self.claimPerLabel, [.text(holder), .int(leaseMilliseconds), .textArray(Array(held.keys)),
                                                        .intArray(held.values.map { Int64($0) }), .int(Int64(room)),
                                                        .int(Int64(options.perLabel))], deadline: deadline)
                } else {
                    try c.execute(Self.claimInDueOrder, [.text(holder), .int(leaseMilliseconds), .int(Int64(room))], deadline: deadline)
                }
            }
            drained = r.rows < room
            guard r.rows > 0 else { break }
            var surplus: [DeliveryID] = []
            var unreadable: [DeliveryID] = []
            mutex.withLock {
                var perLabel = heldPerLabel()
                for i in 0..<r.rows {
                    let id = DeliveryID(r.int(i, 0))
                    guard let label = WebhookLabel(r.text(i, 4)), let type = EventType(rawValue: UInt8(clamping: r.int(i, 5))) else {
                        unreadable.append(id)
                        continue
                    }
                    let account = r.text(i, 2), instance = r.text(i, 3)
                    let key = Self.labelKey(account: account, instance: instance, label: label.name)
                    if perLabel[key, default: 0] >= options.perLabel {
                        surplus.append(id)
                        continue
                    }
                    perLabel[key, default: 0] += 1
                    // Due at once in the view (the database found it due); the deliverer's
                    // own index and endpoint pauses decide when it is sent.
                    let event = QueuedEvent(id: r.text(i, 1), account: account, instance: instance, event: type, envelope: r.bytes(i, 6),
                                            labels: [label], generations: [UInt64(bitPattern: r.int(i, 9))], queuedAt: 0)
                    mirror.apply(.queued(event: event, ids: [id]))
                    let attempts = UInt32(clamping: r.int(i, 7))
                    if attempts > 0 { mirror.apply(.attemptFailed(id: id, attempt: attempts, at: 0, nextDue: 0, error: r.text(i, 8))) }
                    leasedAt[id] = started
                    gained += 1
                }
            }
            if !unreadable.isEmpty {
                logger.error("deliveries this version cannot read (bad label or event); left to their lease", metadata: ["ids": "\(unreadable)"])
            }
            guard !surplus.isEmpty else { break }
            try release(surplus)
        }
        return (gained, drained)
    }

    /// Gives leases back at once (the rows stay due for any deliverer).
    private func release(_ ids: [DeliveryID]) throws {
        let deadline = self.deadline
        try pool.with(deadline: deadline) { c throws(StoreError) in
            _ = try c.execute("UPDATE ryze_deliveries SET lease_holder = NULL, lease_until = NULL WHERE lease_holder = $1 AND id = ANY($2::int8[])",
                              [.text(holder), .intArray(ids.map { Int64(bitPattern: $0) })], deadline: deadline)
        }
    }

    /// With `mutex` held: `ids` leave the view.
    private func forget(_ ids: [DeliveryID]) {
        if !ids.isEmpty { freed = true }
        for id in ids {
            leasedAt[id] = nil
            mirror.apply(.dropped(id: id, at: 0, reason: ""))
        }
    }

    public func record(_ outcomes: [(outcome: QueueStore.Outcome, id: DeliveryID, attempt: UInt32)]) throws -> [Bool] {
        guard !outcomes.isEmpty else { return [] }
        let wallNow = WallClock.system.nowMicroseconds()
        var delivered: [Int64] = [], dropped: [Int64] = [], released: [Int64] = []
        var retry: (ids: [Int64], attempts: [Int64], waits: [Int64], errors: [String]) = ([], [], [], [])
        var dead: (ids: [Int64], attempts: [Int64], errors: [String]) = ([], [], [])
        var seen = Set<DeliveryID>()
        for (outcome, id, attempt) in outcomes where seen.insert(id).inserted {
            let i = Int64(bitPattern: id)
            switch outcome {
            case .delivered: delivered.append(i)
            case .dropped: dropped.append(i)
            case .released: released.append(i)
            case let .retry(error, nextDue):
                retry.ids.append(i); retry.attempts.append(Int64(attempt))
                retry.waits.append(nextDue > wallNow ? Int64(clamping: nextDue - wallNow) : 0)
                retry.errors.append(QueueRecord.cut(error))
            case .dead(let error):
                dead.ids.append(i); dead.attempts.append(Int64(attempt)); dead.errors.append(QueueRecord.cut(error))
            case .refused(let error):
                dead.ids.append(i); dead.attempts.append(Int64(attempt) - 1); dead.errors.append(QueueRecord.cut(error))
            }
        }
        let deadline = self.deadline
        // Recorded or not, none of them is this deliverer's any more, even when the transaction
        // failed: its COMMIT may have landed unanswered, freeing rows that another deliverer
        // may claim at once. Forgotten, the rest are no longer renewed either, so their leases
        // run out and they are claimed again (at least once).
        defer { mutex.withLock { forget(outcomes.map(\.id)) } }
        let done = try pool.transaction(deadline: deadline) { c -> Set<DeliveryID> in
            var done = Set<DeliveryID>()
            func collect(_ r: PGResult) -> Int {
                for k in 0..<r.rows { done.insert(DeliveryID(r.int(k, 0))) }
                return r.rows
            }
            let h = PGValue.text(holder)
            var nDelivered = 0, nDropped = 0
            if !delivered.isEmpty {
                nDelivered = collect(try c.execute("DELETE FROM ryze_deliveries WHERE lease_holder = $1 AND id = ANY($2::int8[]) RETURNING id",
                                                   [h, .intArray(delivered)], deadline: deadline))
            }
            if !dropped.isEmpty {
                nDropped = collect(try c.execute("DELETE FROM ryze_deliveries WHERE lease_holder = $1 AND id = ANY($2::int8[]) RETURNING id",
                                                 [h, .intArray(dropped)], deadline: deadline))
            }
            if !retry.ids.isEmpty {
                _ = collect(try c.execute("""
                    UPDATE ryze_deliveries d SET attempts = v.attempt, due = now() + v.wait * interval '1 microsecond', last_error = v.error,
                           lease_holder = NULL, lease_until = NULL
                    FROM unnest($2::int8[], $3::int8[], $4::int8[], $5::text[]) AS v(id, attempt, wait, error)
                    WHERE d.id = v.id AND d.lease_holder = $1 RETURNING d.id
                    """, [h, .intArray(retry.ids), .intArray(retry.attempts), .intArray(retry.waits), .textArray(retry.errors)],
                    deadline: deadline))
            }
            if !dead.ids.isEmpty {
                _ = collect(try c.execute("""
                    UPDATE ryze_deliveries d SET dead = true, dead_at = now(), attempts = v.attempts, last_error = v.error,
                           lease_holder = NULL, lease_until = NULL
                    FROM unnest($2::int8[], $3::int8[], $4::text[]) AS v(id, attempts, error)
                    WHERE d.id = v.id AND d.lease_holder = $1 RETURNING d.id
                    """, [h, .intArray(dead.ids), .intArray(dead.attempts), .textArray(dead.errors)], deadline: deadline))
            }
            if !released.isEmpty {
                // Given back unrecorded: answered false, whatever the database held.
                try c.execute("UPDATE ryze_deliveries SET lease_holder = NULL, lease_until = NULL WHERE lease_holder = $1 AND id = ANY($2::int8[])",
                              [h, .intArray(released)], deadline: deadline)
            }
            if nDelivered + nDropped > 0 {
                try c.execute("""
                    INSERT INTO ryze_delivery_stats (host, delivered, dropped) VALUES ($1, $2::int8, $3::int8)
                    ON CONFLICT (host) DO UPDATE SET delivered = ryze_delivery_stats.delivered + EXCLUDED.delivered,
                                                     dropped = ryze_delivery_stats.dropped + EXCLUDED.dropped
                    """, [.text(host), .int(Int64(nDelivered)), .int(Int64(nDropped))], deadline: deadline)
            }
            return done
        }
        var answered = Set<DeliveryID>()
        return outcomes.map { done.contains($0.id) && answered.insert($0.id).inserted }
    }

    public func drop(_ drops: [(id: DeliveryID, reason: String)]) throws -> Int {
        guard !drops.isEmpty else { return 0 }
        let answers = try record(drops.map { (QueueStore.Outcome.dropped(reason: $0.reason), $0.id, 0) })
        return answers.filter { $0 }.count
    }

    public func close() {
        let deadline = self.deadline
        _ = try? pool.with(deadline: deadline) { c throws(StoreError) in
            try c.execute("UPDATE ryze_deliveries SET lease_holder = NULL, lease_until = NULL WHERE lease_holder = $1",
                          [.text(holder)], deadline: deadline)
        }
        mutex.withLock { forget(Array(mirror.pending.keys)) }
    }
}
