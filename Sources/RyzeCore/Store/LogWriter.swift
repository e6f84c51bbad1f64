#if canImport(Glibc)
import Glibc
#endif

/// Appends one batch of frames to the log: one `pwrite` at the end of the valid prefix, then
/// `fdatasync`. Knows nothing of records, locks or state; its caller holds the file lock.
///
/// A failed append is cut back with `ftruncate`, so the file stays a valid prefix either way. The
/// two failures differ in what is known afterwards:
/// - the write itself failed (ENOSPC, EFBIG, a short write): nothing of the batch became durable
///   and earlier records are untouched; the log may be appended to again;
/// - `fdatasync` failed: the kernel may already have dropped the batch's dirty pages and marked
///   them clean (Linux reports such an error once), so what the file holds is indeterminate. Like
///   LevelDB, the caller must treat the log as unwritable from then on (see `LogStore`).
enum LogWriter {
    enum Failure: Error {
        case notWritten(StoreError)
        case syncFailed(StoreError)
    }

    static func append(_ frames: [UInt8], fd: Int32, at offset: Int, path: String) throws(Failure) {
        let n = frames.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, off_t(offset)) }
        if n != frames.count {
            let reason = n < 0 ? String(cString: strerror(errno)) : "short write (\(n) of \(frames.count) bytes)"
            let cut = cutBack(fd: fd, to: offset)
            throw .notWritten(.io("append to \(path) failed: \(reason)\(cut)"))
        }
        if fdatasync(fd) != 0 {
            let reason = String(cString: strerror(errno))
            let cut = cutBack(fd: fd, to: offset)
            throw .syncFailed(.io("fdatasync of \(path) failed: \(reason)\(cut)"))
        }
    }

    /// "" when the file was cut back to `offset`, else a note for the error message.
    private static func cutBack(fd: Int32, to offset: Int) -> String {
        ftruncate(fd, off_t(offset)) == 0 ? "" : "; cutting it back failed too: \(String(cString: strerror(errno)))"
    }
}
