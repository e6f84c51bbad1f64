import Atomics
#if canImport(Glibc)
import Glibc
#endif

/// A fixed-size table of GCRA buckets in a file mapped by every worker process.
///
/// Each slot is one 64-bit word, `tag (24 bits) | TAT in 10 µs units, modulo 2^40 (40 bits)`,
/// changed only by compare-and-swap. No lock exists, so a process killed at any instant leaves
/// every slot either before or after its update: nothing for the others to wait on or repair.
///
/// A live TAT is never more than one period (a minute) ahead of now, so the 127-day wrap of the
/// 40-bit field is read unambiguously: a stored TAT that is behind now, or implausibly far ahead,
/// describes a full bucket — exactly like an empty slot — and may be taken over by any key.
///
/// The lowest bit of the tag says whose bucket a slot holds: 1 a valid token's (either of its
/// buckets), 0 a client network's (`ClientNetwork`); an anonymous tag is never 0, so no word of a
/// live bucket is 0. Workers of an older build, met during a rolling restart, leave that bit
/// arbitrary (at worst one of their buckets is taken for the other kind below) and still admit
/// uncounted on a full window until they are replaced; the layout is the same, so they share it.
///
/// A key looks for its own slot in a window of 32 from its home, else takes the first empty slot
/// or one whose bucket is full again. When all 32 hold live buckets of other keys the table is full
/// for it, and nothing is admitted uncounted (an attacker could fill the table at will):
/// - a token key takes the slot of the anonymous bucket with the earliest TAT, or, when all 32 are
///   token buckets, of the token bucket with the earliest TAT, and starts with a full bucket;
/// - an anonymous key takes the slot of the anonymous bucket with the earliest TAT *with its TAT*:
///   the two networks now share that bucket, so rotating addresses never refills one. When all 32
///   are token buckets, or the shared bucket is empty, it is refused and counted in `saturated`.
/// Anonymous keys thus never displace a live token bucket. Every slot taken from a live bucket is
/// counted in `replaced`. README.md ("The data directory") states what this bounds.
public final class SharedRateTable: @unchecked Sendable {
    /// Microseconds per unit of the stored TAT.
    public static let resolution: UInt64 = 10
    /// No bucket's TAT runs further ahead of now than one period; beyond this a word is stale.
    static let maxAhead: UInt64 = GCRA.minute / resolution + 100_000
    static let headerSize = 64
    static let magic: UInt64 = 0x5259_5A45_524C_5431   // "RYZERLT1"
    static let probeWindow = 32
    static let tatBits: UInt64 = 40
    static let tatMask: UInt64 = (1 << 40) - 1
    /// The tag's lowest bit, set in the keys of valid tokens.
    static let tokenKindBit: UInt64 = 1 << tatBits

    public let capacity: Int
    public let path: String
    private let base: UnsafeMutableRawPointer
    private let mappedSize: Int
    private let slots: UnsafeMutablePointer<UnsafeAtomic<UInt64>.Storage>
    private let salt: UInt64
    /// Header words at offsets 24 and 32: zero in a new table, and in one made by an older build.
    private let saturatedCounter: UnsafeAtomic<UInt64>
    private let replacedCounter: UnsafeAtomic<UInt64>

    /// Opens the table at `path`, creating it with `capacity` slots if it does not exist. An
    /// existing table keeps its own capacity, so every process agrees on the layout.
    public init(path: String, capacity: Int) throws(StoreError) {
        precondition(capacity >= SharedRateTable.probeWindow)
        self.path = path
        var fd = open(path, O_RDWR | O_CLOEXEC)
        if fd < 0 && errno == ENOENT {
            try SharedRateTable.create(path: path, capacity: capacity)
            fd = open(path, O_RDWR | O_CLOEXEC)
        }
        guard fd >= 0 else { throw StoreError.errno("cannot open rate-limit table \(path)") }
        defer { close(fd) }
        var header = [UInt64](repeating: 0, count: 3)
        let n = header.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, 24, 0) }
        guard n == 24, header[0] == SharedRateTable.magic, header[1] >= UInt64(SharedRateTable.probeWindow), header[1] < 1 << 32 else {
            throw StoreError.unusable("\(path) is not a rate-limit table; remove it and restart the workers")
        }
        self.capacity = Int(header[1])
        salt = header[2]
        mappedSize = SharedRateTable.headerSize + self.capacity * 8
        guard let p = mmap(nil, mappedSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            throw StoreError.errno("cannot map rate-limit table \(path)")
        }
        base = p
        saturatedCounter = UnsafeAtomic(at: (p + 24).assumingMemoryBound(to: UnsafeAtomic<UInt64>.Storage.self))
        replacedCounter = UnsafeAtomic(at: (p + 32).assumingMemoryBound(to: UnsafeAtomic<UInt64>.Storage.self))
        slots = (p + SharedRateTable.headerSize).assumingMemoryBound(to: UnsafeAtomic<UInt64>.Storage.self)
    }

    deinit { munmap(base, mappedSize) }

    /// Written under a private name and renamed into place, so no process ever maps a half-made table.
    private static func create(path: String, capacity: Int) throws(StoreError) {
        let tmp = "\(path).\(getpid()).tmp"
        let fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError.errno("cannot create rate-limit table \(tmp)") }
        defer { close(fd) }
        var rng = SystemRandomNumberGenerator()
        let header: [UInt64] = [magic, UInt64(capacity), rng.next(), 0]
        let size = headerSize + capacity * 8
        guard ftruncate(fd, off_t(size)) == 0,
              header.withUnsafeBytes({ pwrite(fd, $0.baseAddress!, $0.count, 0) }) == 32 else {
            unlink(tmp)
            throw StoreError.errno("cannot write rate-limit table \(tmp)")
        }
        // If another process won the race, its table stays: link() fails rather than replacing it.
        if link(tmp, path) != 0 && errno != EEXIST {
            unlink(tmp)
            throw StoreError.errno("cannot install rate-limit table \(path)")
        }
        unlink(tmp)
    }

    /// Requests without a valid token refused because the table was full for their network: their
    /// window held only live token buckets, or the bucket they had to share was empty.
    public var saturated: UInt64 { saturatedCounter.load(ordering: .relaxed) }

    /// Slots taken over from a live bucket of another key because a key's window was full.
    public var replaced: UInt64 { replacedCounter.load(ordering: .relaxed) }

    /// Live buckets (TAT still ahead of now): the table's fill, for the status page.
    public func liveEntries(now: UInt64) -> Int {
        var n = 0
        for k in 0..<capacity {
            let w = UnsafeAtomic<UInt64>(at: slots + k).load(ordering: .relaxed)
            if SharedRateTable.liveTAT(w, now: now) != nil { n += 1 }
        }
        return n
    }

    /// A key for a token bucket (from the token's digest, never the token).
    public func key(digest: TokenDigest, bucket: UInt64) -> UInt64 {
        SharedRateTable.mix(digest.w0 ^ salt ^ (bucket &* 0x9E37_79B9_7F4A_7C15)) | SharedRateTable.tokenKindBit
    }

    /// A key for an anonymous bucket: the client's network.
    public func key(network: ClientNetwork) -> UInt64 {
        switch network {
        case .ipv4(let a, let prefix):
            return SharedRateTable.anonymous(SharedRateTable.mix(salt ^ (UInt64(a) | UInt64(prefix) << 32 | 4 << 40)))
        case .ipv6(let high, let low, let prefix):
            let h = SharedRateTable.mix(salt ^ high ^ (UInt64(prefix) | 6 << 8) &* 0xD6E8_FEB8_6659_FD93)
            return SharedRateTable.anonymous(SharedRateTable.mix(h ^ low))
        case .unparsed(let text):
            return key(address: text)
        }
    }

    /// A key for an anonymous bucket named by its raw text.
    public func key(address: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325 ^ salt
        for c in address.utf8 { h = (h ^ UInt64(c)) &* 0x0000_0100_0000_01B3 }
        return SharedRateTable.anonymous(SharedRateTable.mix(h ^ 0xA5A5_A5A5))
    }

    /// Clears the kind bit; a tag left 0 becomes 2, so that no live word is 0.
    static func anonymous(_ key: UInt64) -> UInt64 {
        let k = key & ~tokenKindBit
        return k >> tatBits == 0 ? k | tokenKindBit << 1 : k
    }

    /// Whether a key, or the word of a slot, is of a valid token's bucket.
    static func isTokenKind(_ keyOrWord: UInt64) -> Bool { keyOrWord & tokenKindBit != 0 }

    /// Charges one request to `key`'s bucket and says whether it is admitted.
    public func consume(key: UInt64, rule: GCRA, now: UInt64) -> GCRA.Decision {
        let tag = SharedRateTable.tag(of: key)
        let isToken = SharedRateTable.isTokenKind(key)
        let home = Int(key % UInt64(capacity))
        while true {
            // Find the key's slot, remembering the first slot it could take if it has none and,
            // while there is none such, the live bucket of each kind with the earliest TAT.
            var found: (index: Int, word: UInt64)?
            var free: (index: Int, word: UInt64)?
            var earliestAnonymous: (index: Int, word: UInt64, tat: UInt64)?
            var earliestToken: (index: Int, word: UInt64, tat: UInt64)?
            for p in 0..<SharedRateTable.probeWindow {
                let index = (home + p) % capacity
                let w = UnsafeAtomic<UInt64>(at: slots + index).load(ordering: .acquiring)
                if w != 0 && w >> SharedRateTable.tatBits == tag { found = (index, w); break }
                if free == nil {
                    if let tat = SharedRateTable.liveTAT(w, now: now) {
                        if SharedRateTable.isTokenKind(w) {
                            if tat < earliestToken?.tat ?? .max { earliestToken = (index, w, tat) }
                        } else if tat < earliestAnonymous?.tat ?? .max {
                            earliestAnonymous = (index, w, tat)
                        }
                    } else {
                        free = (index, w)
                    }
                }
                if w == 0 { break }   // keys are never stored past an empty slot of their window
            }
            let (index, old, tat): (Int, UInt64, UInt64)
            var replacing = false
            if let found {
                (index, old, tat) = (found.index, found.word, SharedRateTable.liveTAT(found.word, now: now) ?? 0)
            } else if let free {
                (index, old, tat) = (free.index, free.word, 0)
            } else if let victim = earliestAnonymous {
                // A token starts full: inheriting would let anonymous traffic throttle it. A network
                // inherits: starting full would let it refill by rotating through addresses.
                (index, old, tat) = (victim.index, victim.word, isToken ? 0 : victim.tat)
                replacing = true
            } else if isToken, let victim = earliestToken {
                (index, old, tat) = (victim.index, victim.word, 0)
                replacing = true
            } else {
                // Only live token buckets: a request without a valid token gets nothing but an error,
                // so refusing it costs no client that holds a token (README: CORS preflights).
                saturatedCounter.wrappingIncrement(ordering: .relaxed)
                return SharedRateTable.refusal(rule: rule, freeAt: earliestToken?.tat ?? now, now: now)
            }
            let decision = rule.decide(tat: tat, now: now)
            if !decision.allowed {
                // Refused on its own bucket, or on the one it would share: nothing to write.
                if replacing { saturatedCounter.wrappingIncrement(ordering: .relaxed) }
                if found != nil || replacing { return decision }
            }
            let new = tag << SharedRateTable.tatBits | (decision.newTAT / SharedRateTable.resolution) & SharedRateTable.tatMask
            if UnsafeAtomic<UInt64>(at: slots + index).compareExchange(expected: old, desired: new, ordering: .acquiringAndReleasing).exchanged {
                if replacing { replacedCounter.wrappingIncrement(ordering: .relaxed) }
                return decision
            }
            // Another process changed the slot between our load and our swap: look again.
        }
    }

    /// A refusal without a bucket of its own: asked again once a slot of its window comes free.
    static func refusal(rule: GCRA, freeAt: UInt64, now: UInt64) -> GCRA.Decision {
        GCRA.Decision(allowed: false, newTAT: 0, limit: rule.limit, remaining: 0, resetSeconds: GCRA.ceilSeconds(freeAt),
                      retryAfterSeconds: max(1, GCRA.ceilSeconds(freeAt > now ? freeAt - now : 0)))
    }

    /// Keys made by `key(...)` never have a zero tag; a raw one with a zero tag is read as the
    /// anonymous tag 2, as `anonymous(_:)` would make it, so that no stored word is ever 0.
    static func tag(of key: UInt64) -> UInt64 {
        let t = key >> tatBits
        return t == 0 ? 2 : t
    }

    /// The absolute TAT (µs) a word holds, or nil when its bucket is full again (or the slot empty).
    static func liveTAT(_ word: UInt64, now: UInt64) -> UInt64? {
        guard word != 0 else { return nil }
        let stored = word & tatMask
        let ahead = (stored &- (now / resolution)) & tatMask
        guard ahead > 0 && ahead <= maxAhead else { return nil }
        return (now / resolution + ahead) * resolution
    }

    /// A finaliser (splitmix64) so that nearby inputs land in unrelated slots and tags.
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
