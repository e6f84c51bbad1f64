#if canImport(Glibc)
import Glibc
#endif

/// One deliverer per data directory: `flock(LOCK_EX | LOCK_NB)` on `deliver.lock`, held for the
/// process's life. The kernel releases it when the process dies, however it dies, so a
/// supervisor's restart after `kill -9` gets it at once. (Two deliverers would each send every
/// delivery: at least once still, but twice as often.)
public final class DeliverLock {
    public struct Held: Error, CustomStringConvertible {
        public let path: String
        public var description: String {
            "another deliverer is running for this data directory (\(path) is locked); only one may run at a time"
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    private let fd: Int32

    public init(directory: String) throws {
        let path = directory + "/deliver.lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            let e = errno
            close(fd)
            if e == EWOULDBLOCK { throw Held(path: path) }
            throw Failure(description: "cannot lock \(path): \(String(cString: strerror(e)))")
        }
    }

    deinit { close(fd) }
}
