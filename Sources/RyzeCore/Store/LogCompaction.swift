#if canImport(Glibc)
import Glibc
#endif

/// Writes a log holding exactly `records` and renames it over the log, durably: the new file
/// is fsynced before the rename, the directory after it. A crash at any point leaves either the
/// old log or the new one at the path, never a mix. The caller holds the file lock.
enum LogCompaction {
    static func rewrite<E: LogEntry>(_ records: [E], kind: LogKind, files: DataFiles) throws(StoreError) {
        let tmp = files.compactionTemporary
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError.errno("cannot create \(tmp)") }
        var closed = false
        var renamed = false
        defer {
            if !closed { close(fd) }
            if !renamed { unlink(tmp) }
        }
        var buffer = LogFormat.header(kind)
        for record in records {
            buffer.append(contentsOf: LogFormat.frame(entry: record))
            if buffer.count >= 1 << 20 {
                try DataFiles.writeAll(fd, buffer, path: tmp)
                buffer.removeAll(keepingCapacity: true)
            }
        }
        try DataFiles.writeAll(fd, buffer, path: tmp)
        guard fsync(fd) == 0 else { throw StoreError.errno("fsync of \(tmp) failed") }
        close(fd)
        closed = true
        guard rename(tmp, files.log) == 0 else { throw StoreError.errno("rename \(tmp) to \(files.log) failed") }
        renamed = true
        try files.syncDirectory()
    }
}
