import Atomics
#if canImport(Glibc)
import Glibc
#endif

/// `deliveries.counters`: the deliverer's figures that the queue does not hold, in a small file
/// mapped by every process of the deployment (`SharedWords`), so that any worker's
/// status page reads them with a few memory loads. Delivered and dropped deliveries leave the
/// queue; what is in flight is known only to the deliverer.
///
/// The totals count since the file was made (they survive
/// restarts of the deliverer, not the loss of the file); they are figures for people and
/// monitoring, not durable records.
public final class DeliveryCounters: @unchecked Sendable {
    private let words: SharedWords

    private enum Word: Int {
        case delivered = 0, dropped = 1, inFlight = 2, delivererPID = 3
    }

    public init(path: String) throws(StoreError) {
        words = try SharedWords(path: path)
    }

    private func word(_ w: Word) -> UnsafeAtomic<UInt64> { words.word(w.rawValue) }

    public var delivered: UInt64 { word(.delivered).load(ordering: .relaxed) }
    public var dropped: UInt64 { word(.dropped).load(ordering: .relaxed) }

    /// Attempts the running deliverer is making now; 0 when no deliverer runs (one killed with
    /// attempts in flight left its count behind, but its pid is gone with it).
    public var inFlight: UInt64 {
        let pid = word(.delivererPID).load(ordering: .acquiring)
        guard pid != 0, DeliveryCounters.isAlive(pid_t(truncatingIfNeeded: pid)) else { return 0 }
        return word(.inFlight).load(ordering: .relaxed)
    }

    // MARK: the deliverer's side

    /// Called by the deliverer at start (it holds `deliver.lock`, so it is the only one): what a
    /// killed predecessor left in flight is not in flight any more.
    public func claim(pid: pid_t) {
        word(.inFlight).store(0, ordering: .relaxed)
        word(.delivererPID).store(UInt64(UInt32(bitPattern: pid)), ordering: .releasing)
    }

    /// Called by the deliverer when it stops.
    public func release(pid: pid_t) {
        _ = word(.delivererPID).compareExchange(expected: UInt64(UInt32(bitPattern: pid)), desired: 0, ordering: .acquiringAndReleasing)
        word(.inFlight).store(0, ordering: .relaxed)
    }

    public func countDelivered() { word(.delivered).wrappingIncrement(ordering: .relaxed) }
    public func countDropped(_ n: Int = 1) { word(.dropped).wrappingIncrement(by: UInt64(n), ordering: .relaxed) }
    public func attemptStarted() { word(.inFlight).wrappingIncrement(ordering: .relaxed) }
    public func attemptEnded() { word(.inFlight).wrappingDecrement(ordering: .relaxed) }

    /// kill(pid, 0): EPERM still means a process is there (another user's).
    private static func isAlive(_ pid: pid_t) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }
}
