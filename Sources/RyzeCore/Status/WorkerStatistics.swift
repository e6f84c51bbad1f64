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
    // UnsafeAtomic, not ManagedAtomic: ManagedAtomic finds its storage through the class's runtime
    // metadata on every access, a generic-metadata lookup that showed up in request-path profiles.
    private let served = UnsafeAtomic<Int>.create(0)
    private let inFlight = UnsafeAtomic<Int>.create(0)

    public init(threads: Int, clock: WallClock = .system) {
        pid = getpid()
        startedAt = clock.nowMicroseconds()
        self.threads = threads
    }

    deinit {
        served.destroy()
        inFlight.destroy()
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
