#if canImport(Glibc)
import Glibc
#endif

/// What `ryze-events log verify | dump | repair` do, under the same file lock the workers take,
/// so that a check never reads a record half-written by a live worker. These open the log
/// directly instead of through `LogStore`, which refuses to open a log damaged in the middle:
/// that is exactly the log they exist for.
public enum LogMaintenance {
    public enum Report: Equatable, Sendable {
        case ok(records: Int, bytes: Int)
        /// `validAfter`: offset of a valid record past the damage (damage in the middle), or nil
        /// (a torn tail, which the next write or start cuts).
        case damaged(records: Int, offset: Int, reason: String, validAfter: Int?, size: Int)
    }

    /// Checks the header and every record. Changes nothing.
    public static func verify(_ files: DataFiles) throws(StoreError) -> Report {
        try withLog(files, write: false) { fd, size throws(StoreError) in try inspect(fd: fd, size: size) }
    }

    /// Hands every valid record to `body` with its offset; stops at the first bad one.
    public static func dump(_ files: DataFiles, _ body: (Int, LogRecord) -> Void) throws(StoreError) -> LogFormat.ScanResult {
        try withLog(files, write: false) { fd, _ throws(StoreError) in
            try LogFormat.scan(fd: fd, from: LogFormat.headerSize) { record, offset, _ in body(offset, record) }
        }
    }

    public enum RepairOutcome: Sendable {
        case nothingToRepair(records: Int)
        case cut(offset: Int, reason: String, keptRecords: Int, droppedBytes: Int, droppedRecords: Int, backup: String)
    }

    /// Cuts the log at its first damaged record after copying it to `events.log.bak-<suffix>`.
    /// Workers must be stopped: records after the damage are dropped, and they must replay.
    public static func repair(_ files: DataFiles, backupSuffix: String) throws(StoreError) -> RepairOutcome {
        try withLog(files, write: true) { fd, size throws(StoreError) in
            switch try inspect(fd: fd, size: size) {
            case .ok(let records, _):
                return .nothingToRepair(records: records)
            case let .damaged(records, offset, reason, _, size):
                let backup = files.log + ".bak-" + backupSuffix
                try copy(fd: fd, size: size, to: backup)
                let dropped = try countRecords(fd: fd, from: offset, size: size)
                guard ftruncate(fd, off_t(offset)) == 0, fsync(fd) == 0 else { throw StoreError.errno("cannot truncate \(files.log)") }
                return .cut(offset: offset, reason: reason, keptRecords: records, droppedBytes: size - offset, droppedRecords: dropped, backup: backup)
            }
        }
    }

    private static func withLog<T>(_ files: DataFiles, write: Bool, _ body: (Int32, Int) throws(StoreError) -> T) throws(StoreError) -> T {
        var st = stat()
        guard stat(files.directory, &st) == 0 else { throw StoreError.errno("cannot open data directory \(files.directory)") }
        let lock = try FileLock(path: files.lock, directory: files.directory)
        return try lock.withLock { () throws(StoreError) -> T in
            let fd = open(files.log, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC)
            guard fd >= 0 else { throw StoreError.errno("cannot open \(files.log)") }
            defer { close(fd) }
            var header = [UInt8](repeating: 0, count: LogFormat.headerSize)
            let n = header.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, 0) }
            guard n == LogFormat.headerSize, LogFormat.isValidHeader(header[...]) else { throw StoreError.badHeader(path: files.log) }
            guard fstat(fd, &st) == 0 else { throw StoreError.errno("cannot stat \(files.log)") }
            return try body(fd, Int(st.st_size))
        }
    }

    private static func inspect(fd: Int32, size: Int) throws(StoreError) -> Report {
        let result = try LogFormat.scan(fd: fd, from: LogFormat.headerSize) { _, _, _ in }
        let reason: String
        switch result.stop {
        case .clean: return .ok(records: result.records, bytes: size)
        case .incomplete: reason = "incomplete record"
        case .damaged(let r): reason = r
        }
        let later = try LogFormat.validRecordExists(fd: fd, after: result.end, fileSize: size)
        return .damaged(records: result.records, offset: result.end, reason: reason, validAfter: later, size: size)
    }

    /// Valid frames found after the damage (resynchronising past bad bytes), for the repair report.
    private static func countRecords(fd: Int32, from offset: Int, size: Int) throws(StoreError) -> Int {
        var count = 0
        var at = offset
        while let next = try LogFormat.validRecordExists(fd: fd, after: at, fileSize: size) {
            let r = try LogFormat.scan(fd: fd, from: next) { _, _, _ in }
            count += r.records
            if r.stop == .clean { break }
            at = r.end
        }
        return count
    }

    private static func copy(fd: Int32, size: Int, to path: String) throws(StoreError) {
        let out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard out >= 0 else { throw StoreError.errno("cannot create \(path)") }
        defer { close(out) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var at = 0
        while at < size {
            let n = try LogFormat.readSome(fd: fd, into: &buffer, at: 0, fileOffset: at, limit: min(buffer.count, size - at))
            if n == 0 { break }
            try DataFiles.writeAll(out, Array(buffer[0..<n]), path: path)
            at += n
        }
        guard fsync(out) == 0 else { throw StoreError.errno("fsync of \(path) failed") }
    }
}
