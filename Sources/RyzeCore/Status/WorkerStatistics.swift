import Atomics
#if canImport(Glibc)
import Glibc
#endif

/// What the worker loop knows about itself, for the status page. The adapter updates it; the
/// core only reads it.
public final class WorkerStatistics: Sendable {
    public let pid: Int32
    public let startedAt: UInt64   // Unix µs
    public let threads: Int
    private let served = ManagedAtomic<Int>(0)
    private let inFlight = ManagedAtomic<Int>(0)

    public init(threads: Int, clock: WallClock = .system) {
        pid = getpid()
        startedAt = clock.nowMicroseconds()
        self.threads = threads
    }

    public func requestStarted() { inFlight.wrappingIncrement(ordering: .relaxed) }

    /// Returns how many requests this process has now completed.
    @discardableResult
    public func requestFinished() -> Int {
        inFlight.wrappingDecrement(ordering: .relaxed)
        return served.wrappingIncrementThenLoad(ordering: .relaxed)
    }

    public var requestsServed: Int { served.load(ordering: .relaxed) }
    public var requestsInFlight: Int { inFlight.load(ordering: .relaxed) }
}
