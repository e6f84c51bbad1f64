/// The generic cell rate algorithm: a bucket is one "theoretical arrival time" (TAT). With limit L
/// per period P, each request costs T = P/L; it is admitted while TAT - now stays within L·T.
/// Times are microseconds.
public struct GCRA: Sendable, Equatable {
    public let limit: Int
    /// Emission interval T.
    public let interval: UInt64

    public static let minute: UInt64 = 60_000_000

    public init(limit: Int, periodMicroseconds: UInt64 = GCRA.minute) {
        precondition(limit > 0)
        self.limit = limit
        interval = max(SharedRateTable.resolution, periodMicroseconds / UInt64(limit))
    }

    /// The whole burst: how far ahead of now the TAT may run.
    public var tolerance: UInt64 { interval * UInt64(limit) }

    public struct Decision: Equatable, Sendable {
        public var allowed: Bool
        /// The TAT to store (unchanged when refused).
        public var newTAT: UInt64
        public var limit: Int
        public var remaining: Int
        /// Unix seconds at which the bucket is full again.
        public var resetSeconds: UInt64
        /// Whole seconds until the next request is admitted; set only when refused.
        public var retryAfterSeconds: UInt64?
    }

    public func decide(tat: UInt64, now: UInt64) -> Decision {
        let base = max(tat, now)
        let candidate = base + interval
        if candidate - now <= tolerance {
            return Decision(
                allowed: true, newTAT: candidate, limit: limit,
                remaining: Int((tolerance - (candidate - now)) / interval),
                resetSeconds: GCRA.ceilSeconds(candidate), retryAfterSeconds: nil)
        }
        // Admitted again once candidate - t <= tolerance.
        let wait = candidate - now - tolerance
        return Decision(
            allowed: false, newTAT: tat, limit: limit, remaining: 0,
            resetSeconds: GCRA.ceilSeconds(base), retryAfterSeconds: max(1, GCRA.ceilSeconds(wait)))
    }

    static func ceilSeconds(_ us: UInt64) -> UInt64 { (us + 999_999) / 1_000_000 }
}
