/// SPEC §3: which bucket a request is charged to, and with which rule.
public struct RateLimiter: Sendable {
    public struct Limits: Sendable, Equatable {
        public var perToken: Int
        public var createPerToken: Int
        public var perAddress: Int
        /// `POST /api/events/publish/:instance` per publisher token (SPEC §3: 60,000 a minute).
        public var publishPerToken: Int

        public init(perToken: Int = 100, createPerToken: Int = 20, perAddress: Int = 30, publishPerToken: Int = 60_000) {
            self.perToken = perToken
            self.createPerToken = createPerToken
            self.perAddress = perAddress
            self.publishPerToken = publishPerToken
        }
    }

    public enum Bucket: Sendable {
        /// A valid token, on any endpoint but instance creation.
        case token(TokenDigest)
        /// A valid token creating an instance: a bucket of its own.
        case create(TokenDigest)
        /// A publisher token publishing (SPEC §6.1).
        case publish(TokenDigest)
        /// No token or an invalid one: the client address (`REMOTE_ADDR`), charged to its network.
        case address(String)
    }

    /// Where the buckets live.
    public let store: any RateLimitStore
    /// The same object as `store` when it is the one-host table: the hot path calls it directly,
    /// and the status page shows its fill. Nil for a shared store (Redis).
    public let table: SharedRateTable?
    public let limits: Limits
    public let prefixes: ClientNetwork.Prefixes
    public let clock: WallClock
    private let general: GCRA
    private let create: GCRA
    private let anonymous: GCRA
    private let publish: GCRA

    public init(table: SharedRateTable, limits: Limits, prefixes: ClientNetwork.Prefixes = .init(), clock: WallClock = .system) {
        self.init(store: table, limits: limits, prefixes: prefixes, clock: clock)
    }

    public init(store: any RateLimitStore, limits: Limits, prefixes: ClientNetwork.Prefixes = .init(), clock: WallClock = .system) {
        self.store = store
        table = store as? SharedRateTable
        self.limits = limits
        self.prefixes = prefixes
        self.clock = clock
        general = GCRA(limit: limits.perToken)
        create = GCRA(limit: limits.createPerToken)
        anonymous = GCRA(limit: limits.perAddress)
        publish = GCRA(limit: limits.publishPerToken)
    }

    /// The key and rule a bucket is charged under.
    public func charge(_ bucket: Bucket) -> (key: RateKey, rule: GCRA) {
        switch bucket {
        case .token(let d): return (.token(d, bucket: 1), general)
        case .create(let d): return (.token(d, bucket: 2), create)
        case .publish(let d): return (.token(d, bucket: 3), publish)
        case .address(let a): return (.network(ClientNetwork(remoteAddress: a, prefixes: prefixes)), anonymous)
        }
    }

    /// Charges one request; throws only when a shared store cannot decide (the table never does).
    public func consume(_ bucket: Bucket) throws(RateLimitUnavailable) -> GCRA.Decision {
        if let table {
            // The one-host path as it was before stores were abstracted: no RateKey is built.
            let now = clock.nowMicroseconds()
            switch bucket {
            case .token(let d): return table.consume(key: table.key(digest: d, bucket: 1), rule: general, now: now)
            case .create(let d): return table.consume(key: table.key(digest: d, bucket: 2), rule: create, now: now)
            case .publish(let d): return table.consume(key: table.key(digest: d, bucket: 3), rule: publish, now: now)
            case .address(let a):
                return table.consume(key: table.key(network: ClientNetwork(remoteAddress: a, prefixes: prefixes)), rule: anonymous, now: now)
            }
        }
        let (key, rule) = charge(bucket)
        return try store.consume(key, rule: rule, clock: clock)
    }
}
