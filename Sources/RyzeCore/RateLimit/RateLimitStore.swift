/// A bucket as a store names it: a valid token's, by its digest (never the token) and which of its
/// buckets (1 every endpoint but creation, 2 creation, 3 publishing), or a client network's.
/// Each store derives its own key from it: the one-host table salts it into a slot, a shared store
/// hashes it into a name every host computes alike.
public enum RateKey: Hashable, Sendable {
    case token(TokenDigest, bucket: UInt64)
    case network(ClientNetwork)
}

/// The store could not decide (unreachable, timed out, answered nonsense): the request is answered
/// 503 `Service temporarily unavailable` (SPEC §7), never admitted uncounted.
public struct RateLimitUnavailable: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// Where the GCRA buckets of a deployment live. `SharedRateTable` (a file mapped by the workers of
/// one host) is the default; RyzeRedis's store keeps them on a Redis server shared by many hosts.
/// A store is called by every request thread at once.
public protocol RateLimitStore: AnyObject, Sendable {
    /// Charges one request to `key`'s bucket under `rule`. A store with a clock of its own uses
    /// that one; `clock` is the worker's.
    func consume(_ key: RateKey, rule: GCRA, clock: WallClock) throws(RateLimitUnavailable) -> GCRA.Decision

    /// Requests this process answered 503 because the store could not decide (status page).
    var unavailableCount: UInt64 { get }
}

extension SharedRateTable: RateLimitStore {
    public func consume(_ key: RateKey, rule: GCRA, clock: WallClock) -> GCRA.Decision {
        consume(key: self.key(key), rule: rule, now: clock.nowMicroseconds())
    }

    /// The table decides in shared memory: it is never unavailable.
    public var unavailableCount: UInt64 { 0 }

    @inline(__always)
    func key(_ key: RateKey) -> UInt64 {
        switch key {
        case .token(let digest, let bucket): return self.key(digest: digest, bucket: bucket)
        case .network(let network): return self.key(network: network)
        }
    }
}
