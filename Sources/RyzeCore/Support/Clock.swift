#if canImport(Glibc)
import Glibc
#endif

/// Wall-clock microseconds since the Unix epoch. Shared rate-limit state is compared across
/// processes, so it must be one clock for all of them; `X-RateLimit-Reset` is wall time anyway.
public struct WallClock: Sendable {
    public let nowMicroseconds: @Sendable () -> UInt64

    public init(_ now: @escaping @Sendable () -> UInt64) { nowMicroseconds = now }

    public static let system = WallClock {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }
}

/// The monotonic clock, for durations, deadlines and waits: a wall-clock step must not stretch
/// or cut them. The one reading of it for every target.
public enum MonotonicClock {
    @inline(__always)
    public static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// Seconds on the monotonic clock.
@inline(__always)
public func monotonicSeconds() -> Double { Double(MonotonicClock.nanoseconds()) / 1e9 }
