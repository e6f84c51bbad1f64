import Atomics
#if canImport(Glibc)
import Glibc
#endif

/// A 64-bit counter in a small shared file, mapped by every process of the deployment. Writers
/// bump it after each append or compaction; readers compare it with what they last applied, so
/// an idle log costs one memory load per request and no system call.
public final class ChangeCounter: @unchecked Sendable {
    private let base: UnsafeMutableRawPointer
    private let size = 4096
    private let atomic: UnsafeAtomic<UInt64>

    public init(path: String) throws(StoreError) {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError.errno("cannot open \(path)") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw StoreError.errno("cannot stat \(path)") }
        // Concurrent creators both extend to the same size; extending never clears a bumped value.
        if st.st_size < size, ftruncate(fd, off_t(size)) != 0 { throw StoreError.errno("cannot size \(path)") }
        guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            throw StoreError.errno("cannot map \(path)")
        }
        base = p
        atomic = UnsafeAtomic(at: p.assumingMemoryBound(to: UnsafeAtomic<UInt64>.Storage.self))
    }

    deinit { munmap(base, size) }

    public func load() -> UInt64 { atomic.load(ordering: .acquiring) }

    @discardableResult
    public func bump() -> UInt64 { atomic.wrappingIncrementThenLoad(ordering: .acquiringAndReleasing) }
}
