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
    private let cuts: UnsafeAtomic<UInt64>     // word 1 (0 in a file from before it existed)

    public init(path: String) throws(StoreError) {
        words = try SharedWords(path: path)
        atomic = words.word(0)
        cuts = words.word(1)
    }

    public func load() -> UInt64 { atomic.load(ordering: .acquiring) }

    @discardableResult
    public func bump() -> UInt64 { atomic.wrappingIncrementThenLoad(ordering: .acquiringAndReleasing) }

    /// How many times a writer has cut the log back (a failed append), bumped right after the
    /// cut, with the file lock still held. A process that reads the log without the file lock
    /// may have applied records of a batch that was then cut back, or may hold an offset inside
    /// bytes written over since: when this moved, it replays the log instead of catching up.
    public func loadCutBacks() -> UInt64 { cuts.load(ordering: .acquiring) }

    public func bumpCutBacks() { cuts.wrappingIncrement(ordering: .acquiringAndReleasing) }
}
