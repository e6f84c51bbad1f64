import Logging
import RyzeCore

/// The delivery queue and the dead letters in PostgreSQL (`ryze_deliveries`, schema migration
/// 3, its claim index 4; SPEC §7), as the workers, the status page, `webhook dead ...` and
/// `store migrate` use them. The deliverers' side (claims and leases) is `PostgresDeliverySource`.
///
/// Every statement runs with a deadline on a pooled connection (one thread at a time, libpq's
/// rule): an unreachable PostgreSQL is a `StoreError.unavailable` (503 for a publish), any
/// other failure `.io` (500 `Failed to queue event`).
public final class PostgresQueue: EventQueue, DeadLetterQueue, @unchecked Sendable {
    public struct Options: Sendable {
        public var queryTimeoutMilliseconds = 1500
        public var idleConnections = 4
        /// The status page's figures are counted afresh on each request while the table holds
        /// fewer rows than this (pending and dead); from there on, where counting costs (about
        /// 45 ms per 200,000 rows here), a process serves the figures it counted for up to
        /// `statusMaxAgeSeconds`, and while one of its threads counts, the others serve the last.
        public var statusCountedAlwaysBelow = 10_000
        public var statusMaxAgeSeconds = 1.0
        public init() {}
    }

    public let url: String
    let options: Options
    let pool: ConnectionPool
    private let logger: Logger
    /// The status page's last figures, served when PostgreSQL does not answer and, for a large
    /// table, for `statusMaxAgeSeconds`; when they were counted (monotonic seconds); whether a
    /// thread is counting them now (for a large table). Guarded by `statusLock`.
    private let statusLock = PlainMutex()
    private var lastStatus = DeliveryStatus.zero
    private var lastStatusAt = -Double.infinity
    private var statusCounting = false

    /// Connects once (to apply the schema migrations this binary knows); fails when PostgreSQL
    /// cannot be reached now.
    public init(url: String, options: Options = Options(), logger: Logger = Logger(label: "ryze.queue")) throws(StoreError) {
        self.url = url
        self.options = options
        self.logger = logger
        pool = ConnectionPool(url: url, maxIdle: options.idleConnections)
        let c = try PGConnection.connect(url: url, deadline: .after(milliseconds: 5000))
        try Migrator.migrate(c, logger: logger)
        pool.give(c)
    }

    private var deadline: Deadline { .after(milliseconds: options.queryTimeoutMilliseconds) }

    // MARK: queueing (workers)

    /// One row per label, in one statement (one implicit transaction): returns once PostgreSQL
    /// committed them, so a 202 means every host's deliverers can take them.
    public func enqueue(_ event: QueuedEvent) throws {
        guard !event.labels.isEmpty else { return }
        let deadline = self.deadline
        try pool.with(deadline: deadline) { c throws(StoreError) in
            try c.execute("""
                INSERT INTO ryze_deliveries (event_id, account, instance, label, event, envelope, generation)
                SELECT $1, $2, $3, l, $4::int2, $5, g FROM unnest($6::text[], $7::int8[]) AS u(l, g)
                """, [.text(event.id), .text(event.account), .text(event.instance), .int(Int64(event.event.rawValue)),
                      .bytes(event.envelope), .textArray(event.labels.map(\.name)),
                      .intArray(event.generations.map { Int64(bitPattern: $0) })], deadline: deadline)
        }
    }

    // MARK: status

    /// The deployment's queue: queued and retrying (pending without and with a failed
    /// attempt), in flight (leased by a deliverer now), dead, and the deliverers' totals of
    /// delivered and dropped. One query; the last figures when it fails, or while they are
    /// recent enough for a large table (`Options.statusCountedAlwaysBelow`).
    public func status() -> DeliveryStatus {
        let now = Double(MonotonicClock.nanoseconds()) / 1e9
        let (recent, counting) = statusLock.withLock { () -> (DeliveryStatus?, Bool) in
            let rows = lastStatus.queued + lastStatus.retrying + lastStatus.dead
            guard rows >= options.statusCountedAlwaysBelow else { return (nil, false) }
            if statusCounting || now - lastStatusAt < options.statusMaxAgeSeconds { return (lastStatus, false) }
            statusCounting = true
            return (nil, true)
        }
        if let recent { return recent }
        defer { if counting { statusLock.withLock { statusCounting = false } } }
        let deadline = Deadline.after(milliseconds: 1000)
        do {
            let r = try pool.with(deadline: deadline) { c throws(StoreError) in
                try c.execute("""
                    SELECT count(*) FILTER (WHERE NOT dead AND attempts = 0)::int8,
                           count(*) FILTER (WHERE NOT dead AND lease_until > now())::int8,
                           count(*) FILTER (WHERE NOT dead AND attempts > 0)::int8,
                           count(*) FILTER (WHERE dead)::int8,
                           (SELECT coalesce(sum(delivered), 0) FROM ryze_delivery_stats)::int8,
                           (SELECT coalesce(sum(dropped), 0) FROM ryze_delivery_stats)::int8
                    FROM ryze_deliveries
                    """, deadline: deadline)
            }
            let s = DeliveryStatus(queued: Int(r.int(0, 0)), inFlight: Int(r.int(0, 1)), delivered: Int(r.int(0, 4)),
                                   retrying: Int(r.int(0, 2)), dead: Int(r.int(0, 3)), dropped: Int(r.int(0, 5)))
            statusLock.withLock {
                lastStatus = s
                lastStatusAt = now
            }
            return s
        } catch {
            return statusLock.withLock { lastStatus }
        }
    }

    // MARK: dead letters

    public func deadLetters(instance: String?) throws -> [QueueStore.DeadLetter] {
        let deadline = Deadline.after(milliseconds: 30_000)
        let r = try pool.with(deadline: deadline) { c throws(StoreError) in
            try c.execute("""
                SELECT id, event_id, account, instance, label, event::int8, attempts::int8, last_error,
                       (extract(epoch FROM dead_at) * 1000000)::int8
                FROM ryze_deliveries WHERE dead AND ($1::text IS NULL OR instance = $1) ORDER BY id
                """, [instance.map(PGValue.text) ?? .null], deadline: deadline)
        }
        var out: [QueueStore.DeadLetter] = []
        for i in 0..<r.rows {
            guard let label = WebhookLabel(r.text(i, 4)), let type = EventType(rawValue: UInt8(clamping: r.int(i, 5))) else { continue }
            out.append(QueueStore.DeadLetter(id: DeliveryID(r.int(i, 0)), eventID: r.text(i, 1), account: r.text(i, 2), instance: r.text(i, 3),
                                             label: label, event: type, attempts: UInt32(clamping: r.int(i, 6)), lastError: r.text(i, 7),
                                             deadSince: UInt64(clamping: r.int(i, 8))))
        }
        return out
    }

    /// Back in the queue, due now, with a fresh schedule; all or nothing.
    public func retryDead(_ ids: [DeliveryID]?) throws -> Int {
        try pool.transaction(deadline: .after(milliseconds: 30_000)) { c in
            let deadline = Deadline.after(milliseconds: 30_000)
            if let ids {
                let wanted = Array(Set(ids)).sorted()
                let found = try c.execute("SELECT id FROM ryze_deliveries WHERE dead AND id = ANY($1::int8[]) FOR UPDATE",
                                          [.intArray(wanted.map { Int64(bitPattern: $0) })], deadline: deadline)
                let present = Set((0..<found.rows).map { DeliveryID(found.int($0, 0)) })
                let missing = wanted.filter { !present.contains($0) }
                if !missing.isEmpty { throw QueueStore.DeadLetterError.notDead(missing) }
            }
            let r = try c.execute("""
                UPDATE ryze_deliveries SET dead = false, dead_at = NULL, attempts = 0, last_error = '', due = now(),
                       lease_holder = NULL, lease_until = NULL
                WHERE dead AND ($1::int8[] IS NULL OR id = ANY($1::int8[])) RETURNING id
                """, [ids.map { .intArray($0.map { Int64(bitPattern: $0) }) } ?? .null], deadline: deadline)
            return r.rows
        }
    }

    public func purgeDead(olderThan: UInt64?) throws -> Int {
        let deadline = Deadline.after(milliseconds: 30_000)
        let r = try pool.with(deadline: deadline) { c throws(StoreError) in
            try c.execute("""
                DELETE FROM ryze_deliveries
                WHERE dead AND ($1::int8 IS NULL OR dead_at <= now() - $1::int8 * interval '1 microsecond') RETURNING id
                """, [olderThan.map { .int(Int64(clamping: $0)) } ?? .null], deadline: deadline)
        }
        return r.rows
    }

    // MARK: store migrate

    /// Copies a one-host queue's pending deliveries (with their attempts, due times and last
    /// errors) and dead letters, in one transaction. They get new numbers. Returns (pending, dead).
    public func importQueue(_ queue: DeliveryQueue) throws -> (pending: Int, dead: Int) {
        let all = (Array(queue.pending.values) + Array(queue.dead.values)).sorted { $0.id < $1.id }
        let deadline = Deadline.after(milliseconds: 600_000)
        try pool.transaction(deadline: deadline) { c in
            try c.run(script: "SET LOCAL statement_timeout = 0", deadline: deadline)
            for d in all {
                try c.execute("""
                    INSERT INTO ryze_deliveries (event_id, account, instance, label, event, envelope, attempts, due, last_error,
                                                 dead, dead_at, queued_at, generation)
                    VALUES ($1, $2, $3, $4, $5::int2, $6, $7::int4, to_timestamp($8::int8 / 1000000.0), $9,
                            $10::bool, CASE WHEN $10::bool THEN to_timestamp($11::int8 / 1000000.0) END, to_timestamp($12::int8 / 1000000.0),
                            $13::int8)
                    """, [.text(d.event.id), .text(d.event.account), .text(d.event.instance), .text(d.label.name),
                          .int(Int64(d.event.type.rawValue)), .bytes(d.event.envelope), .int(Int64(d.attempts)),
                          .int(Int64(clamping: d.nextDue)), .text(d.lastError), .bool(d.isDead), .int(Int64(clamping: d.deadSince ?? 0)),
                          .int(Int64(clamping: d.event.queuedAt)), .int(Int64(bitPattern: d.labelGeneration))], deadline: deadline)
            }
        }
        return (queue.pending.count, queue.dead.count)
    }
}
