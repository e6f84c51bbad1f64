import Atomics
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The deployment's state: an append-only log in the data directory, shared by every process
/// pointed at it, replayed into memory at start and followed incrementally afterwards.
///
/// Writers of all processes are serialised by `flock` on `events.lock` (released by the kernel
/// if the holder dies); under it a writer first applies whatever others appended, checks its
/// change against that, appends one frame with one `pwrite`, and `fdatasync`s before returning.
/// Readers never take the file lock: `refresh()` compares a shared change counter and reads only
/// complete, checksummed frames past the offset already applied.
public final class Store: @unchecked Sendable {
    public let directory: String
    public let logPath: String
    let lockPath: String
    private let lockFD: Int32
    private let counter: ChangeCounter
    private let logger: Logger
    private let rw = ReadWriteLock()
    private let writers = PlainMutex()
    // UnsafeAtomic, not ManagedAtomic: ManagedAtomic finds its storage through the class's runtime
    // metadata on every access, a generic-metadata lookup that showed up in request-path profiles.
    private let appliedSeq = UnsafeAtomic<UInt64>.create(0)

    // Guarded by `rw`.
    private var logFD: Int32 = -1
    private var logIdentity = FileIdentity(device: 0, inode: 0)
    private var appliedOffset = 0
    // No dynamic exclusivity check: `rw` already serialises access, and the check costs a
    // thread-local lookup on every read, twice per request.
    @exclusivity(unchecked) private var state = State()
    private var needsReload = false

    public static let logName = "events.log"

    /// Compact automatically once the log holds more than this many times the records of the
    /// current state (and at least `autoCompactionMinimum`); nil never does.
    public let autoCompactionFactor: Int?
    public static let autoCompactionMinimum = 1000

    /// Opens (creating if needed) the store in `directory` and replays its log.
    public init(directory: String, autoCompactionFactor: Int? = nil, logger: Logger = Logger(label: "ryze.store")) throws(StoreError) {
        self.directory = directory
        self.autoCompactionFactor = autoCompactionFactor
        self.logger = logger
        logPath = directory + "/" + Store.logName
        lockPath = directory + "/events.lock"
        try Store.makeDirectory(directory)
        lockFD = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0 else {
            throw StoreError.unusable("cannot lock data directory \(directory): \(lockPath): \(String(cString: strerror(errno)))")
        }
        counter = try ChangeCounter(path: directory + "/events.seq")
        try withFileLock { () throws(StoreError) in
            try rw.withWriteLock { () throws(StoreError) in
                try reload(creating: true)
                try catchUp(holdingFileLock: true)
            }
        }
        appliedSeq.store(counter.load(), ordering: .releasing)
    }

    deinit {
        appliedSeq.destroy()
        if logFD >= 0 { close(logFD) }
        close(lockFD)
    }

    // MARK: reading

    /// Brings this process up to date with what any process appended. Costs one shared-memory
    /// load when nothing changed.
    public func refresh() throws(StoreError) {
        let seq = counter.load()
        if seq == appliedSeq.load(ordering: .acquiring) { return }
        try rw.withWriteLock { () throws(StoreError) in
            if seq == appliedSeq.load(ordering: .acquiring) { return }
            try catchUp(holdingFileLock: false)
            appliedSeq.store(seq, ordering: .releasing)
        }
    }

    /// Runs `body` against the current state, with other threads' catch-up held off.
    public func read<T>(_ body: (State) -> T) -> T {
        rw.withReadLock { body(state) }
    }

    public struct Stats: Sendable {
        public var records: Int
        public var bytes: Int
        public var accounts: Int
        public var instances: Int
    }

    public var stats: Stats {
        rw.withReadLock {
            Stats(records: state.recordCount, bytes: appliedOffset, accounts: state.accounts.count, instances: state.instances.count)
        }
    }

    // MARK: writing

    /// Appends the record `decide` returns for the current, deployment-wide state; returns its
    /// second value once the record is durable. `decide` may throw to refuse (nothing is written)
    /// or return a nil record when there is nothing to change.
    public func write<T>(_ decide: (State) throws -> (LogRecord?, T)) throws -> T {
        let result = try append(decide)
        if needsCompaction {
            do {
                let r = try compact(onlyIfNeeded: true)
                if let r { logger.info("compacted the log", metadata: ["records_before": "\(r.recordsBefore)", "records_after": "\(r.recordsAfter)"]) }
            } catch {
                logger.error("automatic compaction failed; the log is unchanged", metadata: ["error": "\(error)"])
            }
        }
        return result
    }

    private var needsCompaction: Bool { rw.withReadLock { exceedsCompactionThreshold(state) } }

    private func exceedsCompactionThreshold(_ state: State) -> Bool {
        guard let factor = autoCompactionFactor else { return false }
        return state.recordCount >= Store.autoCompactionMinimum && state.recordCount > factor * max(1, state.liveRecordCount)
    }

    /// Group commit: concurrent writers of this process queue their decisions; one of them, the
    /// leader, takes the file lock, decides every queued change in order against the current state,
    /// writes all their frames with one pwrite and makes them durable with one fdatasync. Each
    /// writer returns only once its own record is durable (or its decision refused).
    private func append<T>(_ decide: (State) throws -> (LogRecord?, T)) throws -> T {
        try withoutActuallyEscaping(decide) { decide in
            let write = PendingWrite { state in
                let (record, value) = try decide(state)
                return (record, value as Any)
            }
            group.lock()
            queue.append(write)
            while write.outcome == nil {
                if leaderActive {
                    group.wait()
                    continue
                }
                leaderActive = true
                group.unlock()
                commit()
                group.lock()
                leaderActive = false
                group.broadcast()
            }
            group.unlock()
            return try write.outcome!.get() as! T
        }
    }

    /// `outcome` is read and written only under `group`. `decide` wraps a closure that is not
    /// allowed to escape `append`: the leader drops it in the same critical section that
    /// publishes the outcome, so it is gone before its writer can see the outcome and return.
    private final class PendingWrite {
        var decide: ((State) throws -> (LogRecord?, Any))?
        var outcome: Result<Any, Error>?
        init(_ decide: @escaping (State) throws -> (LogRecord?, Any)) { self.decide = decide }
    }

    private let group = ConditionLock()
    private var queue: [PendingWrite] = []
    private var leaderActive = false

    /// Runs on the leader, outside `group`; sets every write's outcome. `writers` keeps compaction
    /// out: flock excludes other processes, not other threads sharing our descriptor.
    private func commit() {
        writers.withLock { withFileLock {
            // Taken only now: writers that queued while we waited for another process's commit
            // ride along with this one.
            group.lock()
            let batch = queue
            queue.removeAll(keepingCapacity: true)
            group.unlock()
            // Outcomes are collected here and published together at the end: a writer may be
            // woken by an earlier leader's broadcast at any moment, and must not find its
            // outcome while this leader still holds its closure.
            var outcomes: [(PendingWrite, Result<Any, Error>)] = []
            defer {
                group.lock()
                for (w, outcome) in outcomes {
                    w.decide = nil
                    w.outcome = outcome
                }
                group.unlock()
            }
            var frames: [UInt8] = []
            var offset = 0
            var decided: [(PendingWrite, Any)] = []
            // Each decision sees the ones before it in the batch: records are applied as decided,
            // and rolled back (by a reload from the file) if the batch does not become durable.
            rw.withWriteLock {
                do {
                    try catchUp(holdingFileLock: true)
                } catch {
                    for w in batch { outcomes.append((w, .failure(error))) }
                    return
                }
                offset = appliedOffset
                for w in batch {
                    do {
                        let (record, value) = try w.decide!(state)
                        if let record {
                            let frame = LogFormat.frame(record)
                            frames.append(contentsOf: frame)
                            state.apply(record)
                            appliedOffset += frame.count
                            decided.append((w, value))
                        } else {
                            outcomes.append((w, .success(value)))
                        }
                    } catch {
                        outcomes.append((w, .failure(error)))
                    }
                }
            }
            guard !decided.isEmpty else { return }
            do {
                try writeDurably(frames, at: offset)
                for (w, value) in decided { outcomes.append((w, .success(value))) }
            } catch {
                for (w, _) in decided { outcomes.append((w, .failure(error))) }
            }
            rw.withWriteLock { appliedSeq.store(counter.bump(), ordering: .releasing) }
        } }
    }

    private func writeDurably(_ bytes: [UInt8], at offset: Int) throws(StoreError) {
        let fd = rw.withReadLock { logFD }
        let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, off_t(offset)) }
        if n != bytes.count {
            let reason = n < 0 ? String(cString: strerror(errno)) : "short write (\(n) of \(bytes.count) bytes)"
            undoAppend(fd: fd, offset: offset)
            throw StoreError.io("append to \(logPath) failed: \(reason)")
        }
        if fdatasync(fd) != 0 {
            let reason = String(cString: strerror(errno))
            undoAppend(fd: fd, offset: offset)
            throw StoreError.io("fdatasync of \(logPath) failed: \(reason)")
        }
    }

    /// A failed append is cut back so the log stays a valid prefix; the in-memory state, which
    /// already holds the batch's records, is rebuilt from the file before anyone reads it again.
    private func undoAppend(fd: Int32, offset: Int) {
        if ftruncate(fd, off_t(offset)) != 0 {
            logger.error("could not cut back a failed append", metadata: ["file": "\(logPath)", "offset": "\(offset)", "error": "\(String(cString: strerror(errno)))"])
        }
        rw.withWriteLock {
            needsReload = true
            try? catchUp(holdingFileLock: true)
        }
    }

    // MARK: compaction

    public struct CompactionResult: Sendable {
        public var recordsBefore: Int
        public var recordsAfter: Int
        public var bytesBefore: Int
        public var bytesAfter: Int
    }

    /// Rewrites the log as the records of the current state: write a new file, fsync it, rename it
    /// over the log, fsync the directory. Writers wait on the file lock meanwhile; every process
    /// notices the new file through the change counter and replays it.
    public func compact() throws(StoreError) -> CompactionResult {
        try compact(onlyIfNeeded: false)!
    }

    /// With `onlyIfNeeded`, rechecks the automatic threshold under the lock (another process may
    /// have just compacted) and returns nil when there is nothing to do.
    func compact(onlyIfNeeded: Bool) throws(StoreError) -> CompactionResult? {
        try writers.withLock { () throws(StoreError) -> CompactionResult? in
            try withFileLock { () throws(StoreError) -> CompactionResult? in
                try rw.withWriteLock { () throws(StoreError) -> CompactionResult? in
                    try catchUp(holdingFileLock: true)
                    if onlyIfNeeded && !exceedsCompactionThreshold(state) { return nil }
                    let before = (state.recordCount, appliedOffset)
                    let tmp = logPath + ".compact"
                    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
                    guard fd >= 0 else { throw StoreError.errno("cannot create \(tmp)") }
                    var ok = false
                    defer { if !ok { close(fd); unlink(tmp) } }
                    var buffer = LogFormat.header()
                    for record in state.liveRecords {
                        buffer.append(contentsOf: LogFormat.frame(record))
                        if buffer.count >= 1 << 20 { try Store.writeAll(fd, buffer, path: tmp); buffer.removeAll(keepingCapacity: true) }
                    }
                    try Store.writeAll(fd, buffer, path: tmp)
                    guard fsync(fd) == 0 else { throw StoreError.errno("fsync of \(tmp) failed") }
                    close(fd)
                    ok = true
                    guard rename(tmp, logPath) == 0 else { unlink(tmp); throw StoreError.errno("rename \(tmp) to \(logPath) failed") }
                    try Store.syncDirectory(directory)
                    try reload(creating: false)
                    appliedSeq.store(counter.bump(), ordering: .releasing)
                    return CompactionResult(recordsBefore: before.0, recordsAfter: state.recordCount, bytesBefore: before.1, bytesAfter: appliedOffset)
                }
            }
        }
    }

    // MARK: internals (callers hold `rw` for writing)

    /// Applies complete, valid frames past `appliedOffset`. Only a caller holding the file lock may
    /// decide that a bad tail is garbage and cut it; a reader just stops there and retries later.
    private func catchUp(holdingFileLock: Bool) throws(StoreError) {
        let identity = try currentPathIdentity()
        if needsReload || identity != logIdentity {
            try reload(creating: false)
        }
        var st = stat()
        guard fstat(logFD, &st) == 0 else { throw StoreError.errno("cannot stat \(logPath)") }
        let size = Int(st.st_size)
        guard size != appliedOffset else { return }
        let result = try LogFormat.scan(fd: logFD, from: appliedOffset) { record, _, _ in state.apply(record) }
        appliedOffset = result.end
        guard holdingFileLock, result.stop != .clean else { return }
        try cutBadTail(result, fileSize: size)
    }

    private func cutBadTail(_ result: LogFormat.ScanResult, fileSize: Int) throws(StoreError) {
        let reason: String
        switch result.stop {
        case .clean: return
        case .incomplete: reason = "incomplete record"
        case .damaged(let r): reason = r
        }
        if let later = try LogFormat.validRecordExists(fd: logFD, after: result.end, fileSize: fileSize) {
            logger.critical("damaged record in the middle of the log", metadata: ["file": "\(logPath)", "offset": "\(result.end)", "next_valid": "\(later)"])
            throw StoreError.damaged(path: logPath, offset: result.end, reason: reason)
        }
        guard ftruncate(logFD, off_t(result.end)) == 0, fdatasync(logFD) == 0 else {
            throw StoreError.errno("cannot cut the torn tail of \(logPath)")
        }
        logger.warning("cut a torn tail off the log", metadata: [
            "file": "\(logPath)", "offset": "\(result.end)", "bytes_dropped": "\(fileSize - result.end)", "reason": "\(reason)",
        ])
    }

    /// Opens the log at its path anew and replays it from the start.
    private func reload(creating: Bool) throws(StoreError) {
        let fd = open(logPath, O_RDWR | O_CLOEXEC | (creating ? O_CREAT : 0), 0o600)
        guard fd >= 0 else { throw StoreError.errno("cannot open \(logPath)") }
        var st = stat()
        guard fstat(fd, &st) == 0 else { close(fd); throw StoreError.errno("cannot stat \(logPath)") }
        if st.st_size < LogFormat.headerSize {
            // An empty file, or a header torn by a crash at creation: nothing was ever acknowledged.
            guard creating else { close(fd); throw StoreError.badHeader(path: logPath) }
            do throws(StoreError) {
                guard ftruncate(fd, 0) == 0 else { throw StoreError.errno("cannot initialise \(logPath)") }
                try Store.writeAll(fd, LogFormat.header(), path: logPath)
                guard fsync(fd) == 0 else { throw StoreError.errno("fsync of \(logPath) failed") }
                try Store.syncDirectory(directory)
            } catch {
                close(fd)
                throw error
            }
        } else {
            var header = [UInt8](repeating: 0, count: LogFormat.headerSize)
            let n = header.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, 0) }
            guard n == LogFormat.headerSize, LogFormat.isValidHeader(header[...]) else {
                close(fd)
                throw StoreError.badHeader(path: logPath)
            }
        }
        var fresh = State()
        let result: LogFormat.ScanResult
        do throws(StoreError) {
            result = try LogFormat.scan(fd: fd, from: LogFormat.headerSize) { record, _, _ in fresh.apply(record) }
        } catch {
            close(fd)
            throw error
        }
        if logFD >= 0 { close(logFD) }
        logFD = fd
        logIdentity = FileIdentity(st)
        state = fresh
        appliedOffset = result.end
        needsReload = false
    }

    private func currentPathIdentity() throws(StoreError) -> FileIdentity {
        var st = stat()
        guard stat(logPath, &st) == 0 else { throw StoreError.errno("cannot stat \(logPath)") }
        return FileIdentity(st)
    }

    private func withFileLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        while flock(lockFD, LOCK_EX) != 0 && errno == EINTR {}
        defer { flock(lockFD, LOCK_UN) }
        return try body()
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(StoreError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw StoreError.errno("write to \(path) failed") }
            done += n
        }
    }

    static func syncDirectory(_ path: String) throws(StoreError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreError.errno("cannot open directory \(path)") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw StoreError.errno("fsync of directory \(path) failed") }
    }

    static func makeDirectory(_ path: String) throws(StoreError) {
        var st = stat()
        if stat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw StoreError.unusable("data directory \(path) is not a directory") }
            return
        }
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, 0o700) != 0 && errno != EEXIST {
                throw StoreError.unusable("cannot create data directory \(path): \(String(cString: strerror(errno)))")
            }
        }
    }
}

struct FileIdentity: Equatable {
    var device: UInt64
    var inode: UInt64

    init(device: UInt64, inode: UInt64) { self.device = device; self.inode = inode }
    init(_ st: stat) { device = UInt64(st.st_dev); inode = UInt64(st.st_ino) }
}
