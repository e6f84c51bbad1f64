import Atomics
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// An append-only log in the data directory (log_format.md), shared by every process pointed at
/// it, replayed into memory at start and followed afterwards. `LogStore`, the one-host
/// `StateStore`, is the log of accounts, instances and configurations (`AppendLog<State>`).
///
/// The units it composes, each with one job: `FileLock` (the deployment-wide write lock),
/// `GroupCommit` (this process's writers share one append), `LogWriter` (pwrite, fdatasync, cut
/// back), `LogFollower` (catch up from the file into a `State`), `ChangeCounter` (tells readers
/// that the file changed, without a system call), `AutoCompactor` (compaction off the request
/// path). This class keeps the policy: what is locked when, and what a failure means.
///
/// Lock order, outer to inner; a thread may skip levels but never take them in another order:
/// 1. `writers`, a mutex of this process: one committer or compactor at a time (flock does not
///    exclude threads that share its descriptor);
/// 2. `fileLock`, flock on `events.lock`: one writer in the whole deployment;
/// 3. `rw`, the read-write lock over the in-memory state.
/// `GroupCommit`'s and `AutoCompactor`'s own locks are leaves, never held while taking another.
///
/// After a failed `fdatasync` the log is indeterminate (see `LogWriter`), and this process
/// refuses every later write and compaction with the error it saw, while it keeps serving reads
/// from memory. Only a restart (replaying the file as it then is) writes again; the
/// supervisor's rolling restart does that without a failed request.
public final class AppendLog<S: ReplayedLog>: @unchecked Sendable {
    public let files: DataFiles
    private let logger: Logger
    private let writers = PlainMutex()
    private let fileLock: FileLock
    private let rw = ReadWriteLock()
    private let group = GroupCommit<S>()
    private let counter: ChangeCounter
    /// The change counter's value this process has caught up with. Stored under `rw` (write);
    /// loaded without it, as the cheap "anything new?" test of `refresh`. UnsafeAtomic, not
    /// ManagedAtomic: ManagedAtomic finds its storage through the class's runtime metadata on
    /// every access, a generic-metadata lookup that showed up in request-path profiles.
    private let appliedSeq = UnsafeAtomic<UInt64>.create(0)
    /// The cut-back count (`ChangeCounter.loadCutBacks`) this process's state accounts for.
    /// Guarded by `rw` (write), like `follower`.
    private var seenCutBacks: UInt64 = 0

    /// The state, guarded by `rw`. Behind a pointer allocated once: reading `pointee` lends the
    /// state to a reader, where a stored property of this generic class was copied on every read
    /// (a retain and a release of each of its dictionaries, twice per request), and no dynamic
    /// exclusivity check runs (`rw` already serialises access).
    private let cell: UnsafeMutablePointer<S>
    /// Guarded by `rw`.
    private var follower: LogFollower<S>
    /// Guarded by `writers`: set once an `fdatasync` failed; every later write fails with it.
    private var unwritable: StoreError?
    /// Set in `init` only.
    private var compactor: AutoCompactor?

    public static var logName: String { S.kind.name + ".log" }

    /// Compact automatically once the log holds more than this many times the records of the
    /// current state (and at least `autoCompactionMinimum`); nil never does.
    public let autoCompactionFactor: Int?
    public static var autoCompactionMinimum: Int { 1000 }

    /// Opens (creating if needed) the store in `directory` and replays its log, cutting a torn
    /// tail; damage in the middle of the log is an error.
    public init(directory: String, autoCompactionFactor: Int? = nil, logger: Logger = Logger(label: "ryze.store")) throws(StoreError) {
        files = DataFiles(directory: directory, name: S.kind.name)
        self.autoCompactionFactor = autoCompactionFactor
        self.logger = logger
        try files.makeDirectory()
        fileLock = try FileLock(path: files.lock, directory: directory)
        counter = try ChangeCounter(path: files.changeCounter)
        follower = LogFollower(files: files, logger: logger)
        cell = .allocate(capacity: 1)
        cell.initialize(to: S())
        try fileLock.withLock { () throws(StoreError) in
            try rw.withWriteLock { () throws(StoreError) in
                seenCutBacks = counter.loadCutBacks()
                try follower.reload(into: &cell.pointee, creating: true)
                try follower.catchUp(into: &cell.pointee, holdingFileLock: true)
            }
        }
        appliedSeq.store(counter.load(), ordering: .releasing)
        if autoCompactionFactor != nil {
            compactor = AutoCompactor { [weak self] in self?.compactIfNeeded() }
        }
    }

    deinit {
        cell.deinitialize(count: 1)
        cell.deallocate()
        compactor?.stop()
        appliedSeq.destroy()
        follower.close()
    }

    public var logPath: String { files.log }

    /// `follower.catchUp`, replaying instead when a writer cut the log back since this process
    /// last caught up (see `ChangeCounter.loadCutBacks`). Call with `rw` held for writing. The
    /// count is read before the file: a cut after this read is seen by the next call.
    private func catchUp(holdingFileLock: Bool) throws(StoreError) {
        let cuts = counter.loadCutBacks()
        if cuts != seenCutBacks { follower.needsReload = true }
        try follower.catchUp(into: &cell.pointee, holdingFileLock: holdingFileLock)
        seenCutBacks = cuts
    }

    // MARK: reading

    /// Costs one shared-memory load when nothing changed.
    public func refresh() throws(StoreError) {
        let seq = counter.load()
        if seq == appliedSeq.load(ordering: .acquiring) { return }
        try rw.withWriteLock { () throws(StoreError) in
            if seq == appliedSeq.load(ordering: .acquiring) { return }
            try catchUp(holdingFileLock: false)
            appliedSeq.store(seq, ordering: .releasing)
        }
    }

    /// Runs `body` against the current state. The generic way; see `withStatePointer`.
    public func withState<T, E: Error>(_ body: (S) throws(E) -> T) throws(E) -> T {
        try rw.withReadLock { () throws(E) -> T in try body(cell.pointee) }
    }

    /// Lends the current state to `body` as a pointer, valid only during the call, with the read
    /// lock held. A closure of a concrete type: a caller that knows `S` reads the state in place.
    /// (Handed through a generic closure type, the state was copied on every call, a retain and a
    /// release of each of its dictionaries, twice per request.)
    public func withStatePointer(_ body: (UnsafePointer<S>) -> Void) {
        rw.lockForReading()
        defer { rw.unlock() }
        body(UnsafePointer(cell))
    }

    /// Records, bytes applied, and whether this process may still write.
    public var health: (records: Int, bytes: Int, writable: Bool) {
        let writable = writers.withLock { unwritable == nil }
        return rw.withReadLock { (cell.pointee.recordCount, follower.appliedOffset, writable) }
    }

    // MARK: writing

    /// See `StateStore.write` for what `decide` may not do.
    public func write<T, E: Error>(_ decide: (S) throws(E) -> (S.Entry?, T)) throws -> T {
        // Filled in by `decide`'s wrapper on the leader's thread; read here only after the
        // outcome, which the leader publishes under GroupCommit's lock.
        var value: T?
        var refusal: E?
        let outcome = group.submit({ state in
            do throws(E) {
                let (record, v) = try decide(state)
                value = v
                return record.map(GroupCommit<S>.Decision.append) ?? .nothing
            } catch {
                refusal = error
                return .refused
            }
        }, lead: commitBatch)
        if case .failed(let error) = outcome { throw error }
        if let refusal { throw refusal }
        if let compactor, needsCompaction { compactor.request() }
        return value!
    }

    /// The leader's work: every queued decision in order against the current state, their frames
    /// in one append, one `fdatasync`. Each decision sees the ones before it in the batch:
    /// records are applied as decided, and rolled back (by a replay from the file) if the batch
    /// does not become durable.
    ///
    /// The outcomes are published (their writers woken) only once both locks are let go: the
    /// file lock is the one thing every writer of the deployment waits for, and writers woken
    /// while it is still held compete with its release for the two cores.
    private func commitBatch() {
        var outcomes: [(GroupCommit<S>.Ticket, GroupCommit<S>.Outcome)] = []
        defer { group.publish(outcomes) }
        writers.withLock { fileLock.withLock {
            var batch: [GroupCommit<S>.Ticket] = []
            if let unwritable {
                batch = group.takeBatch()
                for ticket in batch { outcomes.append((ticket, .failed(unwritable))) }
                return
            }
            var frames: [UInt8] = []
            var appended: [GroupCommit<S>.Ticket] = []
            var offset = 0
            var fd: Int32 = -1
            let caughtUp: StoreError? = rw.withWriteLock {
                do throws(StoreError) {
                    try catchUp(holdingFileLock: true)
                } catch {
                    batch = group.takeBatch()
                    return error
                }
                // Taken as late as possible, after the catch-up: writers that queued while this
                // leader waited for the file lock or read the other processes' records ride along.
                batch = group.takeBatch()
                offset = follower.appliedOffset
                fd = follower.fd
                for ticket in batch {
                    switch ticket.decide!(cell.pointee) {
                    case .append(let record):
                        let frame = LogFormat.frame(entry: record)
                        frames.append(contentsOf: frame)
                        cell.pointee.apply(record)
                        follower.advance(by: frame.count)
                        appended.append(ticket)
                    case .nothing, .refused:
                        outcomes.append((ticket, .settled))
                    }
                }
                return nil
            }
            if let caughtUp {
                for ticket in batch { outcomes.append((ticket, .failed(caughtUp))) }
                return
            }
            guard !appended.isEmpty else { return }
            do throws(LogWriter.Failure) {
                try LogWriter.append(frames, fd: fd, at: offset, path: files.log)
                for ticket in appended { outcomes.append((ticket, .settled)) }
            } catch {
                let storeError: StoreError
                switch error {
                case .notWritten(let e):
                    storeError = e
                    logger.error("append failed; the log was cut back and nothing of it was acknowledged", metadata: ["error": "\(e)"])
                case .syncFailed(let e):
                    storeError = .unwritable(e.description)
                    unwritable = storeError
                    logger.critical("fdatasync failed: the log is indeterminate, this worker refuses writes until it is restarted", metadata: ["error": "\(e)"])
                }
                for ticket in appended { outcomes.append((ticket, .failed(storeError))) }
                // The batch was cut back (LogWriter): other processes may have read some of it.
                counter.bumpCutBacks()
                rw.withWriteLock {
                    follower.needsReload = true
                    do {
                        try catchUp(holdingFileLock: true)
                    } catch {
                        logger.error("cannot replay the log after a failed append", metadata: ["error": "\(error)"])
                    }
                }
            }
            rw.withWriteLock { appliedSeq.store(counter.bump(), ordering: .releasing) }
        } }
    }

    // MARK: compaction

    public struct CompactionResult: Sendable {
        public var recordsBefore: Int
        public var recordsAfter: Int
        public var bytesBefore: Int
        public var bytesAfter: Int
    }

    private var needsCompaction: Bool { rw.withReadLock { exceedsCompactionThreshold(cell.pointee) } }

    private func exceedsCompactionThreshold(_ state: S) -> Bool {
        guard let factor = autoCompactionFactor else { return false }
        return state.recordCount >= AppendLog.autoCompactionMinimum && state.recordCount > factor * max(1, state.liveRecordCount)
    }

    /// The automatic compactor's work: recheck the threshold under the lock (another process may
    /// have just compacted) and compact if it still holds.
    private func compactIfNeeded() {
        do {
            if let r = try compact(onlyIfNeeded: true) {
                logger.info("compacted the log", metadata: ["records_before": "\(r.recordsBefore)", "records_after": "\(r.recordsAfter)"])
            }
        } catch {
            logger.error("automatic compaction failed; the log is unchanged", metadata: ["error": "\(error)"])
        }
    }

    /// Rewrites the log as the records of the current state: write a new file, fsync it, rename it
    /// over the log, fsync the directory. Writers wait on the file lock meanwhile; every process
    /// notices the new file through the change counter and replays it.
    public func compact() throws(StoreError) -> CompactionResult {
        try compact(onlyIfNeeded: false)!
    }

    private func compact(onlyIfNeeded: Bool) throws(StoreError) -> CompactionResult? {
        try writers.withLock { () throws(StoreError) -> CompactionResult? in
            if let unwritable { throw unwritable }
            return try fileLock.withLock { () throws(StoreError) -> CompactionResult? in
                try rw.withWriteLock { () throws(StoreError) -> CompactionResult? in
                    try catchUp(holdingFileLock: true)
                    if onlyIfNeeded && !exceedsCompactionThreshold(cell.pointee) { return nil }
                    let before = (cell.pointee.recordCount, follower.appliedOffset)
                    try LogCompaction.rewrite(cell.pointee.liveRecords, kind: S.kind, files: files)
                    try follower.reload(into: &cell.pointee, creating: false)
                    appliedSeq.store(counter.bump(), ordering: .releasing)
                    return CompactionResult(recordsBefore: before.0, recordsAfter: cell.pointee.recordCount,
                                            bytesBefore: before.1, bytesAfter: follower.appliedOffset)
                }
            }
        }
    }
}

