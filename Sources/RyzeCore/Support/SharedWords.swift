import Atomics
#if canImport(Glibc)
import Glibc
#endif

/// One page of 64-bit words in a small file, mapped shared by every process of the deployment
/// that opens it: counters any process can read with a memory load and no system call.
///
/// Invariants: the file is never shrunk, so a word once bumped keeps its value; concurrent
/// creators both extend it to the same size, and extending never clears a word. Words are changed
/// only by atomic operations, so a process killed at any instant leaves nothing locked or
/// half-written. The mapping lives as long as this object.
final class SharedWords: @unchecked Sendable {
    static let count = 512
    private let base: UnsafeMutableRawPointer
    private let size = SharedWords.count * 8

    init(path: String) throws(StoreError) {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError.errno("cannot open \(path)") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw StoreError.errno("cannot stat \(path)") }
        if st.st_size < size, ftruncate(fd, off_t(size)) != 0 { throw StoreError.errno("cannot size \(path)") }
        guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            throw StoreError.errno("cannot map \(path)")
        }
        base = p
    }

    deinit { munmap(base, size) }

    /// The word at `index` (0 ..< count), valid while this object lives.
    @inline(__always)
    func word(_ index: Int) -> UnsafeAtomic<UInt64> {
        precondition(index >= 0 && index < SharedWords.count)
        return UnsafeAtomic(at: (base + index * 8).assumingMemoryBound(to: UnsafeAtomic<UInt64>.Storage.self))
    }
}
