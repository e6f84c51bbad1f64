import Logging
import RyzeCore
import Synchronization

/// The `StateStore` of a deployment of several hosts (SPEC §7): the state lives in PostgreSQL,
/// and each process keeps a copy in memory that the request path reads without a round trip.
///
/// Coherence: every write bumps `ryze_change_seq` and records its `LogRecord` in `ryze_changes`
/// in its own transaction. In a worker (`follow: true`) one thread per process follows that
/// sequence: it polls every `pollInterval` and is woken sooner by `NOTIFY` (a hint only: it is
/// lost while reconnecting). The request path's `refresh()` costs one atomic load and a clock
/// read: it refuses (503) when the copy has not been confirmed current for `maxStaleness`,
/// which keeps SPEC §7's one second for writes and revocations made on other hosts. Without a
/// follower (the command-line tools) `refresh()` catches up synchronously.
///
/// Within one host the promise is the one-host log's: a write is served at once by every process
/// of that host (an account made with the CLI works on the next request; a configuration saved
/// through one worker is read back through another). Every process given the host's data
/// directory maps `hostChangesPath` there, a counter each bumps after it commits a write; the
/// request path compares it with the value it last caught up to (one memory load) and, when it
/// moved, catches up from PostgreSQL before answering: one round trip per write made on this
/// host, none otherwise.
///
/// Writes: one transaction each, serialized across every host by a transaction-scoped advisory
/// lock; under it the copy is brought up to the database's sequence, then the handler's
/// `decide` runs against it exactly as with the one-host log, so quotas, unique names and
/// tokens and the webhook limits hold whoever writes at once. Nothing is acknowledged before
/// PostgreSQL committed it.
public final class PostgresStore: StateStore, @unchecked Sendable {
    public struct Options: Sendable {
        /// Start the per-process follower (workers); off for one-shot tools.
        public var follow: Bool
        public var pollIntervalMilliseconds = 250
        /// Requests are refused once the copy was last confirmed current longer ago than this.
        public var maxStalenessMilliseconds = 1000
        /// Each write's whole transaction, and each catch-up query, must finish within this.
        public var queryTimeoutMilliseconds = 1500
        public var connectTimeoutMilliseconds = 1000
        public var idleConnections = 4
        /// The host's change counter (a file in its data directory), or nil: then writes made
        /// by other processes of the same host, like those of other hosts, are served within
        /// `maxStaleness`.
        public var hostChangesPath: String?

        public init(follow: Bool, hostChangesPath: String? = nil) {
            self.follow = follow
            self.hostChangesPath = hostChangesPath
        }
    }

    /// The host's change counter in a data directory (see the type's comment).
    public static func hostChangesPath(dataDirectory: String) -> String { dataDirectory + "/store.seq" }

    public let url: String
    let options: Options
    private let logger: Logger
    private let pool: ConnectionPool

    /// Guards `state` and `seq`: readers are request threads; writers are the follower, a
    /// write's catch-up, and a write applying its own committed record.
    private let lock = ReadWriteLock()
    /// The state, behind a pointer so that the request path reads it in place: through a stored
    /// property, each lookup retained and released every dictionary of the state (see
    /// `AppendLog.withStatePointer`).
    private let cell: UnsafeMutablePointer<State> = {
        let p = UnsafeMutablePointer<State>.allocate(capacity: 1)
        p.initialize(to: State())
        return p
    }()
    private var state: State {
        get { cell.pointee }
        _modify { yield &cell.pointee }
        set { cell.pointee = newValue }
    }
    /// The change sequence `state` stands at.
    private var seq: Int64 = 0

    /// Monotonic nanoseconds at which the follower last started a catch-up that succeeded;
    /// 0 while PostgreSQL is unreachable.
    private let confirmedAt = Atomic<UInt64>(0)
    /// Set by `close()`: the follower stops at its next turn.
    private let stopping = Atomic<Bool>(false)
    /// The follower's last failure, for the 503's log line. Guarded by `failureLock`.
    private let failureLock = PlainMutex()
    private var lastFailure = "not connected yet"
    /// Writes committed by this host's processes (see the type's comment), and the count this
    /// process's copy is known to hold all of. `hostCatchUp` serializes the request threads'
    /// catch-ups, so that one write costs a process one round trip, not one per thread.
    private let hostChanges: ChangeCounter?
    private let hostSeen = Atomic<UInt64>(0)
    private let hostCatchUp = PlainMutex()
    /// When `confirmNow` or `catchUpWithHost` last failed (monotonic ns); guarded by `hostCatchUp`.
    private var lastConfirmFailure: UInt64 = 0

    /// Connects, applies the schema migrations this binary knows, loads the state and, with
    /// `follow`, starts following. Fails when PostgreSQL cannot be reached now.
    public init(url: String, options: Options, logger: Logger = Logger(label: "ryze.store")) throws(StoreError) {
        self.url = url
        self.options = options
        self.logger = logger
        pool = ConnectionPool(url: url, maxIdle: options.idleConnections)
        hostChanges = try options.hostChangesPath.map { path throws(StoreError) in try ChangeCounter(path: path) }
        // Before the state is read: a write counted after this is in the database after the read.
        hostSeen.store(hostChanges?.load() ?? 0, ordering: .relaxed)
        let c = try PGConnection.connect(url: url, deadline: .after(milliseconds: max(options.connectTimeoutMilliseconds, 5000)))
        try Migrator.migrate(c, logger: logger)
        // The follower's connection listens before the state is read, so that no change
        // committed after the read goes unannounced; it then follows from there.
        if options.follow { try c.execute("LISTEN \(Schema.channel)", deadline: .after(milliseconds: 5000)) }
        let (loaded, at) = try StateTables.load(c, deadline: .after(milliseconds: 30_000))
        state = loaded
        seq = at
        if options.follow {
            confirmedAt.store(Deadline.now, ordering: .releasing)
            let handed = Handover(c)
            BackgroundThread.start { [self] in follow(handed.take()) }
        } else {
            pool.give(c)
        }
    }

    deinit {
        cell.deinitialize(count: 1)
        cell.deallocate()
    }

    /// Stops the follower (tests; a worker simply exits).
    public func close() { stopping.store(true, ordering: .relaxed) }

    // MARK: StateStore

    public func refresh() throws(StoreError) {
        guard options.follow else {
            _ = try withConnection { c throws(StoreError) in try catchUp(c, deadline: .after(milliseconds: options.queryTimeoutMilliseconds)) }
            return
        }
        let at = confirmedAt.load(ordering: .acquiring)
        let now = Deadline.now
        if at == 0 {
            throw .unavailable(failureLock.withLock { lastFailure })
        }
        if now &- at > UInt64(options.maxStalenessMilliseconds) * 1_000_000 {
            try confirmNow()
        }
        if let hostChanges, hostChanges.load() != hostSeen.load(ordering: .acquiring) {
            try catchUpWithHost(hostChanges)
        }
    }

    /// The copy was not confirmed current within `maxStaleness`, though the follower has not seen
    /// PostgreSQL fail: the process was stopped or starved of CPU (seen: a worker resumed after
    /// SIGSTOP answered 503 until its follower's next turn). The request thread catches up
    /// itself, once per process (under `hostCatchUp`); after a failure the others refuse at once
    /// for a second rather than each waiting out a deadline, so a silent server still gets its
    /// 503 within SPEC's two seconds.
    private func confirmNow() throws(StoreError) {
        try hostCatchUp.withLock { () throws(StoreError) in
            let started = Deadline.now
            let limit = UInt64(options.maxStalenessMilliseconds) * 1_000_000
            if started &- confirmedAt.load(ordering: .acquiring) <= limit { return }   // another thread did it
            let target = hostChanges?.load()
            // A short deadline: with the time the copy has already been stale, a silent server
            // must still be a 503 within 2 s.
            try catchUpOnce(milliseconds: 500, refusal: "PostgreSQL has not answered for over \(options.maxStalenessMilliseconds) ms")
            // Only forward: the follower may have confirmed later meanwhile.
            var seen = confirmedAt.load(ordering: .relaxed)
            while seen < started && seen != 0 {
                let (done, now) = confirmedAt.compareExchange(expected: seen, desired: started, ordering: .acquiringAndReleasing)
                if done { break }
                seen = now
            }
            if let target { hostSeen.store(target, ordering: .releasing) }
        }
    }

    /// Catches up with the writes this host's processes have counted, once per process for any
    /// number of request threads that noticed them at once.
    private func catchUpWithHost(_ counter: ChangeCounter) throws(StoreError) {
        try hostCatchUp.withLock { () throws(StoreError) in
            // Every write counted by now has committed (counted after COMMIT): the catch-up
            // below sees it.
            let target = counter.load()
            guard hostSeen.load(ordering: .acquiring) != target else { return }
            try catchUpOnce(milliseconds: 1000, refusal: "PostgreSQL did not answer a catch-up in the last second")
            hostSeen.store(target, ordering: .releasing)
        }
    }

    /// A request thread's catch-up, with `hostCatchUp` held: one attempt, one deadline for
    /// connecting and the query, no retry on a fresh connection; and after a failure, every
    /// thread queued on the lock is refused at once for a second (`refusal`) instead of each
    /// waiting out a deadline of its own (SPEC §7: a 503 within 2 s).
    private func catchUpOnce(milliseconds: Int, refusal: String) throws(StoreError) {
        if Deadline.now &- lastConfirmFailure < 1_000_000_000 { throw .unavailable(refusal) }
        let deadline = Deadline.after(milliseconds: milliseconds)
        do throws(StoreError) {
            let (c, _) = try pool.take(deadline: deadline)
            defer { pool.give(c) }
            try catchUp(c, deadline: deadline)
        } catch {
            lastConfirmFailure = Deadline.now
            throw error
        }
    }

    /// Brings the copy up to the database's last change now, whatever the follower has seen:
    /// for a decision that cannot be taken back (the deliverer's drop of a delivery whose label
    /// it does not know yet). One round trip.
    public func synchronize() throws(StoreError) {
        try hostCatchUp.withLock { () throws(StoreError) in
            _ = try withConnection { c throws(StoreError) in try catchUp(c, deadline: .after(milliseconds: options.queryTimeoutMilliseconds)) }
        }
    }

    public func read<T, E: Error>(_ body: (State) throws(E) -> T) throws(E) -> T {
        try lock.withReadLock { () throws(E) -> T in try body(state) }
    }

    public func principal(for token: TokenDigest) -> State.Principal? {
        lock.withReadLock { State.principal(in: cell, for: token) }
    }

    public func instance(_ key: State.InstanceKey) -> State.Instance? {
        lock.withReadLock { cell.pointee.instances[key] }
    }

    public func write<T, E: Error>(_ decide: (State) throws(E) -> (LogRecord?, T)) throws -> T {
        let deadline = Deadline.after(milliseconds: options.queryTimeoutMilliseconds)
        let c = try begin(deadline: deadline)
        do {
            let value = try transaction(c, deadline: deadline, decide)
            pool.give(c)
            return value
        } catch {
            if !c.broken { _ = try? c.execute("ROLLBACK", deadline: .after(milliseconds: 500)) }
            pool.give(c)
            throw error
        }
    }

    /// A connection inside a fresh transaction. An idle connection may have died with an
    /// earlier server (restarted since): then one fresh connection is tried.
    private func begin(deadline: Deadline) throws(StoreError) -> PGConnection {
        let (c, reused) = try pool.take(deadline: deadline)
        do {
            try c.execute("BEGIN", deadline: deadline)
            return c
        } catch {
            guard error.isUnavailable && reused else { throw error }
        }
        let fresh = try PGConnection.connect(url: url, deadline: deadline)
        try fresh.execute("BEGIN", deadline: deadline)
        return fresh
    }

    public var stats: StoreStats {
        lock.withReadLock {
            StoreStats(records: state.recordCount, bytes: 0, accounts: state.accounts.count, instances: state.instances.count,
                       writable: !options.follow || confirmedAt.load(ordering: .relaxed) != 0)
        }
    }

    /// The change sequence this process's copy stands at.
    public var sequence: Int64 { lock.withReadLock { seq } }

    /// `store migrate`: writes `records` (a one-host deployment's `liveRecords`) into a database
    /// that holds no deployment yet, in one transaction under the write lock. No change records
    /// are kept for them: the sequence jumps by one with none recorded, so every follower sees
    /// a gap and reloads the whole state. Returns the records written.
    public func importRecords(_ records: [LogRecord]) throws(StoreError) -> Int {
        let deadline = Deadline.after(milliseconds: 600_000)
        let c = try PGConnection.connect(url: url, deadline: .after(milliseconds: 5000))
        try c.run(script: "SET statement_timeout = 0", deadline: deadline)
        do {
            try c.execute("BEGIN", deadline: deadline)
            try c.execute("SELECT pg_advisory_xact_lock($1::int8)", [.int(Schema.writeLock)], deadline: deadline)
            let held = try c.execute("SELECT ((SELECT count(*) FROM ryze_accounts) + (SELECT count(*) FROM ryze_publishers))::int8",
                                     deadline: deadline)
            guard held.int(0, 0) == 0 else {
                throw StoreError.unusable("the database already holds accounts or publishers: store migrate only fills an empty one")
            }
            for r in records { try StateTables.write(r, c, deadline: deadline) }
            try c.execute("UPDATE ryze_change_seq SET seq = seq + 1 WHERE id = 1", deadline: deadline)
            try c.execute("SELECT pg_notify('\(Schema.channel)', 'import')", deadline: deadline)
            try c.execute("COMMIT", deadline: deadline)
        } catch {
            if !c.broken { _ = try? c.execute("ROLLBACK", deadline: .after(milliseconds: 1000)) }
            throw (error as? StoreError) ?? .io("\(error)")
        }
        let (loaded, at) = try StateTables.load(c, deadline: deadline)
        install(loaded, at: at, evenIfOlder: false)
        return records.count
    }

    // MARK: Writing

    /// The body of a write's transaction (begun by the caller, which rolls back on a throw).
    private func transaction<T, E: Error>(_ c: PGConnection, deadline: Deadline,
                                          _ decide: (State) throws(E) -> (LogRecord?, T)) throws -> T {
        try c.execute("SELECT pg_advisory_xact_lock($1::int8)", [.int(Schema.writeLock)], deadline: deadline)
        let current = try catchUp(c, deadline: deadline, inTransaction: true)
        guard let decided = try decideOnCopy(decide, at: current) else {
            // The copy moved on between catch-up and now: impossible while this transaction
            // holds the lock, unless the follower reloaded a database that went back.
            throw StoreError.unavailable("the state moved during a write; try again")
        }
        let (record, value) = decided
        guard let record else {
            try c.execute("COMMIT", deadline: deadline)
            return value
        }
        try StateTables.write(record, c, deadline: deadline)
        let next = current + 1
        try c.execute("INSERT INTO ryze_changes (seq, record) VALUES ($1::int8, $2)", [.int(next), .bytes(record.encode())], deadline: deadline)
        try c.execute("UPDATE ryze_change_seq SET seq = $1::int8 WHERE id = 1", [.int(next)], deadline: deadline)
        if next % 1000 == 0 {
            try c.execute("DELETE FROM ryze_changes WHERE seq <= $1::int8", [.int(next - Schema.changesKept)], deadline: deadline)
        }
        try c.execute("SELECT pg_notify('\(Schema.channel)', $1)", [.text(String(next))], deadline: deadline)
        try c.execute("COMMIT", deadline: deadline)
        advance([(next, record)])
        if let hostChanges {
            // This process holds its own write: if it held every earlier one too, it need not
            // catch up for this one.
            let counted = hostChanges.bump()
            _ = hostSeen.compareExchange(expected: counted &- 1, desired: counted, ordering: .acquiringAndReleasing)
        }
        return value
    }

    /// Runs `decide` against the copy as it stands at `seq`, or nil if it no longer does. A
    /// function of its own so that the copy handed to `decide` is released before the record
    /// is applied in place (else applying it would copy every dictionary of the state).
    private func decideOnCopy<T, E: Error>(_ decide: (State) throws(E) -> (LogRecord?, T), at seq: Int64) throws(E) -> (LogRecord?, T)? {
        let copy: State? = lock.withReadLock { self.seq == seq ? state : nil }
        guard let copy else { return nil }
        return try decide(copy)
    }

    // MARK: Following

    /// Brings the copy up to the database's change sequence and returns that sequence: the
    /// changes since the copy's, or the whole state when they are no longer all kept (or one is
    /// not understood). `inTransaction`: inside a write's transaction, which holds the write
    /// lock, so that the tables cannot move under a reload.
    @discardableResult
    private func catchUp(_ c: PGConnection, deadline: Deadline, inTransaction: Bool = false) throws(StoreError) -> Int64 {
        let r = try c.execute("SELECT seq FROM ryze_change_seq WHERE id = 1", deadline: deadline)
        guard r.rows == 1 else { throw .unusable("ryze_change_seq has no row: the schema is damaged") }
        let current = r.int(0, 0)
        var from = lock.withReadLock { seq }
        if current == from { return current }
        if current > from {
            while from < current {
                let rows = try c.execute("SELECT seq, record FROM ryze_changes WHERE seq > $1::int8 ORDER BY seq LIMIT 1000",
                                         [.int(from)], deadline: deadline)
                var changes: [(Int64, LogRecord)] = []
                var expected = from + 1
                for i in 0..<rows.rows {
                    let s = rows.int(i, 0)
                    let bytes = rows.bytes(i, 1)
                    guard s == expected, let record = bytes.withUnsafeBytes({ LogRecord.decode($0) }) else { break }
                    changes.append((s, record))
                    expected += 1
                }
                guard !changes.isEmpty, changes.count == rows.rows else { break }   // a gap: reload
                advance(changes)
                from = changes.last!.0
            }
            if from >= current { return current }
        }
        // Behind the changes kept, a record this version does not understand, or a database
        // whose sequence went back (restored from a backup): the whole state, afresh.
        logger.notice("reloading the whole state from PostgreSQL", metadata: ["local": "\(from)", "database": "\(current)"])
        let (loaded, at) = try StateTables.load(c, deadline: deadline, ownTransaction: !inTransaction)
        install(loaded, at: at, evenIfOlder: current < from)
        return at
    }

    /// Replaces the copy with a state loaded whole. Not with an older one, unless the database
    /// itself went back: another thread may have moved the copy past `at` meanwhile, and going
    /// back would only make a write in flight find the copy moved.
    private func install(_ loaded: State, at: Int64, evenIfOlder: Bool) {
        lock.withWriteLock {
            guard evenIfOlder || at >= seq else { return }
            state = loaded
            seq = at
        }
    }

    /// Applies changes in sequence order; those the copy already holds are skipped.
    private func advance(_ changes: [(Int64, LogRecord)]) {
        lock.withWriteLock {
            for (s, record) in changes where s == seq + 1 {
                state.apply(record)
                seq = s
            }
        }
    }

    private func withConnection<T>(_ body: (PGConnection) throws(StoreError) -> T) throws(StoreError) -> T {
        let deadline = Deadline.after(milliseconds: options.connectTimeoutMilliseconds)
        let (c, reused) = try pool.take(deadline: deadline)
        do {
            let value = try body(c)
            pool.give(c)
            return value
        } catch {
            guard error.isUnavailable && reused else { throw error }
        }
        let fresh = try PGConnection.connect(url: url, deadline: deadline)
        let value = try body(fresh)
        pool.give(fresh)
        return value
    }

    /// The follower thread: keeps the copy current and `confirmedAt` fresh; on any failure
    /// marks the store unavailable at once, then reconnects with a growing pause (up to one
    /// second) and reloads the whole state, since notifications and changes may have been
    /// missed meanwhile.
    private func follow(_ listening: PGConnection) {
        var conn: PGConnection? = listening
        var pauseMilliseconds = 50
        while !stopping.load(ordering: .relaxed) {
            do {
                let started = Deadline.now
                if conn == nil {
                    let c = try PGConnection.connect(url: url, deadline: .after(milliseconds: options.connectTimeoutMilliseconds))
                    try c.execute("LISTEN \(Schema.channel)", deadline: .after(milliseconds: options.queryTimeoutMilliseconds))
                    let (loaded, at) = try StateTables.load(c, deadline: .after(milliseconds: max(options.queryTimeoutMilliseconds, 10_000)))
                    // After a reconnect the database may be another (restored from a backup): its
                    // state wins, whatever the copy held.
                    install(loaded, at: at, evenIfOlder: true)
                    pool.flush()
                    if confirmedAt.load(ordering: .relaxed) == 0 { logger.notice("PostgreSQL reachable again; state reloaded") }
                    conn = c
                } else {
                    try catchUp(conn!, deadline: .after(milliseconds: options.queryTimeoutMilliseconds))
                }
                confirmedAt.store(started, ordering: .releasing)
                pauseMilliseconds = 50
                _ = try conn!.awaitNotification(deadline: .after(milliseconds: options.pollIntervalMilliseconds))
            } catch {
                conn = nil
                if confirmedAt.exchange(0, ordering: .acquiringAndReleasing) != 0 {
                    logger.error("PostgreSQL unreachable: requests get 503 until it is back", metadata: ["error": "\(error)"])
                }
                failureLock.withLock { lastFailure = error.description }
                Deadline.sleep(milliseconds: pauseMilliseconds)
                pauseMilliseconds = min(pauseMilliseconds * 2, 1000)
            }
        }
    }
}

/// Moves the connection `init` opened to the follower's thread, which alone uses it from then on.
private final class Handover: @unchecked Sendable {
    private var connection: PGConnection?
    init(_ c: PGConnection) { connection = c }
    func take() -> PGConnection {
        defer { connection = nil }
        return connection!
    }
}
