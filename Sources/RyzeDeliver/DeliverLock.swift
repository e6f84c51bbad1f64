import RyzeCore
#if canImport(Glibc)
import Glibc
#endif

/// One deliverer per data directory: `flock(LOCK_EX | LOCK_NB)` on `deliver.lock`, held for the
/// process's life. The kernel releases it when the process dies, however it dies, so a
/// supervisor's restart after `kill -9` gets it at once. (Two deliverers would each send every
/// delivery: at least once still, but twice as often.)
///
/// The file also holds the data directory's deliverer identity (32 hex digits, written under the
/// lock on first use, kept across restarts): with `--store`, every lease a deliverer takes names
/// it, so the next deliverer of the same data directory (which holds the lock, hence the last
/// one is dead) may take back its predecessor's leases at once instead of waiting them out.
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
    /// This data directory's deliverer identity (see the type's comment).
    public let identity: String

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
        do {
            identity = try Self.identity(fd: fd, path: path)
        } catch {
            close(fd)
            throw error
        }
    }

    /// Reads the identity, or writes a new one when the file holds none (new, or made by a
    /// binary before identities). Caller holds the lock.
    private static func identity(fd: Int32, path: String) throws -> String {
        var bytes = [UInt8](repeating: 0, count: 64)
        let n = pread(fd, &bytes, bytes.count, 0)
        guard n >= 0 else { throw Failure(description: "cannot read \(path): \(String(cString: strerror(errno)))") }
        let isHex = { (b: UInt8) in (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66) }
        if n >= 32, bytes[0..<32].allSatisfy(isHex), n == 32 || bytes[32] == 0x0A {
            return String(decoding: bytes[0..<32], as: UTF8.self)
        }
        let made = Hex.lowercase(SecureRandom.bytes(16))
        let line = Array((made + "\n").utf8)
        guard ftruncate(fd, 0) == 0, pwrite(fd, line, line.count, 0) == line.count, fsync(fd) == 0 else {
            throw Failure(description: "cannot write \(path): \(String(cString: strerror(errno)))")
        }
        return made
    }

    deinit { close(fd) }
}
