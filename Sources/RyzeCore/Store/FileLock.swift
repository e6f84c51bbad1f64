#if canImport(Glibc)
import Glibc
#endif

/// The deployment-wide write lock: `flock(LOCK_EX)` on `events.lock`. The kernel releases it when
/// its holder dies, so a worker killed while writing never wedges the others (a lock in shared
/// memory would). It excludes other processes only: threads sharing this descriptor are not
/// excluded from each other, which is why `LogStore` holds its `writers` mutex outside it.
final class FileLock: @unchecked Sendable {
    let path: String
    private let fd: Int32

    init(path: String, directory: String) throws(StoreError) {
        self.path = path
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw StoreError.unusable("cannot lock data directory \(directory): \(path): \(String(cString: strerror(errno)))")
        }
    }

    deinit { close(fd) }

    func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}
