/// SPEC §3: which bucket a request is charged to, and with which rule.
public struct RateLimiter: Sendable {
    public struct Limits: Sendable, Equatable {
        public var perToken: Int
        public var createPerToken: Int
        public var perAddress: Int

        public init(perToken: Int = 100, createPerToken: Int = 20, perAddress: Int = 30) {
            self.perToken = perToken
            self.createPerToken = createPerToken
            self.perAddress = perAddress
        }
    }

    public enum Bucket: Sendable {
        /// A valid token, on any endpoint but instance creation.
        case token(TokenDigest)
        /// A valid token creating an instance: a bucket of its own.
        case create(TokenDigest)
        /// No token or an invalid one: the client address (`REMOTE_ADDR`), charged to its network.
        case address(String)
    }

    public let table: SharedRateTable
    public let limits: Limits
    public let prefixes: ClientNetwork.Prefixes
    public let clock: WallClock
    private let general: GCRA
    private let create: GCRA
    private let anonymous: GCRA

    public init(table: SharedRateTable, limits: Limits, prefixes: ClientNetwork.Prefixes = .init(), clock: WallClock = .system) {
        self.table = table
        self.limits = limits
        self.prefixes = prefixes
        self.clock = clock
        general = GCRA(limit: limits.perToken)
        create = GCRA(limit: limits.createPerToken)
        anonymous = GCRA(limit: limits.perAddress)
    }

    public func consume(_ bucket: Bucket) -> GCRA.Decision {
        let now = clock.nowMicroseconds()
        switch bucket {
        case .token(let d): return table.consume(key: table.key(digest: d, bucket: 1), rule: general, now: now)
        case .create(let d): return table.consume(key: table.key(digest: d, bucket: 2), rule: create, now: now)
        case .address(let a):
            return table.consume(key: table.key(network: ClientNetwork(remoteAddress: a, prefixes: prefixes)), rule: anonymous, now: now)
        }
    }
}
