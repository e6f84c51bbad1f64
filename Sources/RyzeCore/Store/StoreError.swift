#if canImport(Glibc)
import Glibc
#endif

public enum StoreError: Error, Equatable, CustomStringConvertible {
    /// A system call on the data directory failed; the message names it.
    case io(String)
    /// The file does not start with this version's header.
    case badHeader(path: String)
    /// A bad record with valid ones after it: never served silently.
    case damaged(path: String, offset: Int, reason: String)
    /// The data directory or its lock could not be opened.
    case unusable(String)
    /// An earlier `fdatasync` failed: the log is indeterminate and this process writes no more.
    case unwritable(String)
    /// A shared store (PostgreSQL, SPEC §7) cannot be reached or did not answer in time: the
    /// request gets 503 `Service temporarily unavailable`, and the store reconnects by itself.
    case unavailable(String)

    public var description: String {
        switch self {
        case .io(let m): return m
        case .badHeader(let path): return "\(path): not a ryze-events log (bad header or unsupported version)"
        case let .damaged(path, offset, reason):
            return "\(path): damaged record at offset \(offset) (\(reason)) with valid records after it; run `ryze-events log verify` to inspect and `ryze-events log repair` to cut the log at that offset (a backup is kept)"
        case .unusable(let m): return m
        case .unwritable(let m): return "writes refused until this worker restarts (an earlier fdatasync failed: \(m))"
        case .unavailable(let m): return "store unavailable: \(m)"
        }
    }

    /// A short cause for an HTTP answer: no paths, offsets or system details (those go to the log).
    public var publicCause: String {
        switch self {
        case .io: return "storage error"
        case .badHeader, .damaged: return "storage damaged"
        case .unusable, .unwritable, .unavailable: return "storage unavailable"
        }
    }

    /// SPEC §7: what a request that needs an unreachable shared store is answered.
    public static let unavailableMessage = "Service temporarily unavailable"

    public var isUnavailable: Bool {
        if case .unavailable = self { return true }
        return false
    }

    static func errno(_ what: String) -> StoreError {
        .io("\(what): \(String(cString: strerror(Glibc.errno)))")
    }
}
