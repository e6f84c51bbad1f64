import Atomics
#if canImport(Glibc)
import Glibc
#endif

/// What the worker loop knows about itself, for the status page. The adapter updates it; the
/// core only reads it.
public final class WorkerStatistics: @unchecked Sendable {
    public let pid: Int32
    public let startedAt: UInt64   // Unix µs
    public let threads: Int
    /// One cache line per request thread, written by that thread alone: counting a request is two
    /// plain stores on a line no other core writes, where shared counters took two atomic
    /// increments on a line every thread fought over. Readers add the slots up.
    private let slots: UnsafeMutablePointer<UnsafeAtomic<Int>.Storage>
    private static let stride = 128 / MemoryLayout<UnsafeAtomic<Int>.Storage>.stride
    private static let servedWord = 0
    private static let inFlightWord = 1

    public init(threads: Int, clock: WallClock = .system) {
        pid = getpid()
        startedAt = clock.nowMicroseconds()
        self.threads = max(1, threads)
        let words = self.threads * WorkerStatistics.stride
        slots = .allocate(capacity: words)
        slots.initialize(repeating: UnsafeAtomic<Int>.Storage(0), count: words)
    }

    deinit {
        slots.deinitialize(count: threads * WorkerStatistics.stride)
        slots.deallocate()
    }

    private func word(_ thread: Int, _ index: Int) -> UnsafeAtomic<Int> {
        precondition(thread >= 0 && thread < threads)
        return UnsafeAtomic(at: slots + thread * WorkerStatistics.stride + index)
    }

    /// Called by request thread `thread` (0 ..< threads) only.
    public func requestStarted(thread: Int) { bump(word(thread, WorkerStatistics.inFlightWord), by: 1) }

    /// Called by request thread `thread` (0 ..< threads) only.
    public func requestFinished(thread: Int) {
        bump(word(thread, WorkerStatistics.inFlightWord), by: -1)
        bump(word(thread, WorkerStatistics.servedWord), by: 1)
    }

    /// A single writer per word: load and store, no read-modify-write.
    private func bump(_ w: UnsafeAtomic<Int>, by delta: Int) {
        w.store(w.load(ordering: .relaxed) &+ delta, ordering: .relaxed)
    }

    public var requestsServed: Int { sum(WorkerStatistics.servedWord) }
    public var requestsInFlight: Int { sum(WorkerStatistics.inFlightWord) }

    private func sum(_ index: Int) -> Int {
        (0..<threads).reduce(0) { $0 + word($1, index).load(ordering: .relaxed) }
    }
}
