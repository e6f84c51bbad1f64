import Atomics
#if canImport(Glibc)
import Glibc
#endif

/// A 64-bit counter in a small shared file, mapped by every process of the deployment. Writers
/// bump it after each append or compaction; readers compare it with what they last applied, so
/// an idle log costs one memory load per request and no system call.
public final class ChangeCounter: @unchecked Sendable {
    private let words: SharedWords
    private let atomic: UnsafeAtomic<UInt64>   // word 0 of `words`, which outlives it

    public init(path: String) throws(StoreError) {
        words = try SharedWords(path: path)
        atomic = words.word(0)
    }

    public func load() -> UInt64 { atomic.load(ordering: .acquiring) }

    @discardableResult
    public func bump() -> UInt64 { atomic.wrappingIncrementThenLoad(ordering: .acquiringAndReleasing) }
}
