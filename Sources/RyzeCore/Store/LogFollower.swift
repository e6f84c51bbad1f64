import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Follows a log into the state it folds into (`State` for `events.log`): replays it from the start when the file at the path
/// changes (compaction renamed a new one over it) or after a failed append, and otherwise
/// applies only the complete, checksummed frames past the offset already applied.
///
/// Not thread-safe: its owner (`AppendLog`) calls every mutating method with its `rw` lock held
/// for writing, and reads `fd` and `appliedOffset` under at least the read lock.
struct LogFollower<S: ReplayedLog> {
    let files: DataFiles
    let logger: Logger
    private(set) var fd: Int32 = -1
    private var identity = FileIdentity.none
    /// The end of the valid prefix this process has applied: where the next append goes.
    private(set) var appliedOffset = 0
    /// Set after a failed append: memory may hold records the file does not.
    var needsReload = false

    init(files: DataFiles, logger: Logger) {
        self.files = files
        self.logger = logger
    }

    func close() { if fd >= 0 { Glibc.close(fd) } }

    /// Applies what was appended since the last call. Only a caller holding the file lock may
    /// decide that a bad tail is garbage and cut it; a reader just stops there and comes back.
    mutating func catchUp(into state: inout S, holdingFileLock: Bool) throws(StoreError) {
        if !needsReload {
            let current = try currentIdentity()
            if current != identity { needsReload = true }
        }
        if needsReload { try reload(into: &state, creating: false) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw StoreError.errno("cannot stat \(files.log)") }
        let size = Int(st.st_size)
        guard size != appliedOffset else { return }
        let result = try LogFormat.scan(fd: fd, from: appliedOffset, kind: S.kind, chunk: LogFormat.chunk(forBytes: size - appliedOffset)) {
            (record: S.Entry, _, _) in state.apply(record)
        }
        appliedOffset = result.end
        guard holdingFileLock, result.stop != .clean else { return }
        try cutBadTail(result, fileSize: size)
    }

    /// Records that `frameBytes` were appended and applied by this process itself.
    mutating func advance(by frameBytes: Int) { appliedOffset += frameBytes }

    /// Opens the log at its path anew and replays it from the start into a fresh state.
    mutating func reload(into state: inout S, creating: Bool) throws(StoreError) {
        let path = files.log
        let newFD = open(path, O_RDWR | O_CLOEXEC | (creating ? O_CREAT : 0), 0o600)
        guard newFD >= 0 else { throw StoreError.errno("cannot open \(path)") }
        var ok = false
        defer { if !ok { Glibc.close(newFD) } }
        var st = stat()
        guard fstat(newFD, &st) == 0 else { throw StoreError.errno("cannot stat \(path)") }
        if st.st_size < LogFormat.headerSize {
            // An empty file, or a header torn by a crash at creation: nothing was ever acknowledged.
            guard creating else { throw StoreError.badHeader(path: path) }
            guard ftruncate(newFD, 0) == 0 else { throw StoreError.errno("cannot initialise \(path)") }
            try DataFiles.writeAll(newFD, LogFormat.header(S.kind), path: path)
            guard fsync(newFD) == 0 else { throw StoreError.errno("fsync of \(path) failed") }
            try files.syncDirectory()
        } else {
            var header = [UInt8](repeating: 0, count: LogFormat.headerSize)
            let n = header.withUnsafeMutableBytes { pread(newFD, $0.baseAddress!, $0.count, 0) }
            guard n == LogFormat.headerSize, LogFormat.isValidHeader(header[...], S.kind) else { throw StoreError.badHeader(path: path) }
        }
        var fresh = S()
        let result = try LogFormat.scan(fd: newFD, from: LogFormat.headerSize, kind: S.kind,
                                        chunk: LogFormat.chunk(forBytes: Int(st.st_size) - LogFormat.headerSize)) {
            (record: S.Entry, _, _) in fresh.apply(record)
        }
        ok = true
        close()
        fd = newFD
        identity = FileIdentity(st)
        state = fresh
        appliedOffset = result.end
        needsReload = false
    }

    private func currentIdentity() throws(StoreError) -> FileIdentity {
        var st = stat()
        guard stat(files.log, &st) == 0 else { throw StoreError.errno("cannot stat \(files.log)") }
        return FileIdentity(st)
    }

    /// A bad frame with nothing valid after it is a torn tail (a crash mid-append): cut it. One
    /// with a valid frame after it is damage in the middle: refuse, someone must look.
    private func cutBadTail(_ result: LogFormat.ScanResult, fileSize: Int) throws(StoreError) {
        let reason: String
        switch result.stop {
        case .clean: return
        case .incomplete: reason = "incomplete record"
        case .damaged(let r): reason = r
        }
        if let later = try LogFormat.validRecordExists(fd: fd, after: result.end, fileSize: fileSize, as: S.Entry.self, kind: S.kind) {
            logger.critical("damaged record in the middle of the log", metadata: ["file": "\(files.log)", "offset": "\(result.end)", "next_valid": "\(later)"])
            throw StoreError.damaged(path: files.log, offset: result.end, reason: reason)
        }
        guard ftruncate(fd, off_t(result.end)) == 0, fdatasync(fd) == 0 else {
            throw StoreError.errno("cannot cut the torn tail of \(files.log)")
        }
        logger.warning("cut a torn tail off the log", metadata: [
            "file": "\(files.log)", "offset": "\(result.end)", "bytes_dropped": "\(fileSize - result.end)", "reason": "\(reason)",
        ])
    }
}
