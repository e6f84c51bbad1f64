import Foundation
import Testing
@testable import RyzeCore

/// What the shared table does when every slot of a key's probe window holds a live bucket of
/// another key. A table of 32 slots is one window for every key, so each test fills it exactly.
@Suite struct RateLimitReplacementTests {
    let now: UInt64 = 1_800_000_000_000_000   // µs
    let anonymous = GCRA(limit: 30)           // 2 s a request
    let general = GCRA(limit: 50)             // 1.2 s a request

    func table(_ dir: TempDirectory) throws -> SharedRateTable {
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        return try SharedRateTable(path: dir.path + "/rl", capacity: 32)
    }

    func token(_ t: SharedRateTable, _ name: String) -> UInt64 { t.key(digest: TokenDigest(of: name), bucket: 1) }

    @Test func keysCarryTheirKindInTheTagsLowestBit() throws {
        let dir = TempDirectory()
        let t = try table(dir)
        for i in 0..<2000 {
            for b: UInt64 in [1, 2] { #expect(SharedRateTable.isTokenKind(t.key(digest: TokenDigest(of: "k\(i)"), bucket: b))) }
            for k in [t.key(address: "a\(i)"), t.key(network: ClientNetwork(remoteAddress: "10.\(i >> 8).\(i & 255).1"))] {
                #expect(!SharedRateTable.isTokenKind(k))
                #expect(SharedRateTable.tag(of: k) == k >> SharedRateTable.tatBits && k >> SharedRateTable.tatBits != 0)
            }
        }
        #expect(SharedRateTable.anonymous(0x1FF_FFFF_FFFF) >> SharedRateTable.tatBits == 2)
    }

    /// The attack in miniature: addresses fill the window, a fresh token bursts between
    /// requests from ever new addresses, and is still admitted exactly its limit.
    @Test func aTokenTakesTheEarliestAnonymousSlotAndAddressesNeverDisplaceIt() throws {
        let dir = TempDirectory()
        let t = try table(dir)
        for i in 0..<32 { _ = t.consume(key: t.key(address: "a\(i)"), rule: anonymous, now: now + UInt64(i) * 1000) }
        let at = now + 100_000
        #expect(t.liveEntries(now: at) == 32)
        let victim = token(t, "victim")
        let first = t.consume(key: victim, rule: general, now: at)
        #expect(first.allowed && first.remaining == 49)   // a full bucket of its own
        #expect(t.replaced == 1)
        // a0 had the earliest TAT and lost its slot; coming back it shares a1's bucket (one request
        // spent, 1 ms older) instead of starting full: 28 left, not 29.
        let back = t.consume(key: t.key(address: "a0"), rule: anonymous, now: at)
        #expect(back.allowed && back.remaining == 28)
        #expect(t.replaced == 2)
        var admitted = 1
        for i in 0..<120 {
            _ = t.consume(key: t.key(address: "flood\(i)"), rule: anonymous, now: at)
            if t.consume(key: victim, rule: general, now: at).allowed { admitted += 1 }
        }
        #expect(admitted == 50)
        #expect(t.liveEntries(now: at) == 32)
    }

    @Test func aTokenDisplacesATokenOnlyWhenNoAnonymousBucketIsLeft() throws {
        let dir = TempDirectory()
        let t = try table(dir)
        let tokens = (0..<31).map { token(t, "t\($0)") }
        for (i, k) in tokens.enumerated() { _ = t.consume(key: k, rule: general, now: now + UInt64(i) * 1000) }
        // The only address has a later TAT than every token; it is still the one to go.
        _ = t.consume(key: t.key(address: "late"), rule: anonymous, now: now + 50_000)
        let at = now + 100_000
        #expect(t.consume(key: token(t, "newcomer"), rule: general, now: at).remaining == 49)
        #expect(t.replaced == 1)
        for k in tokens { #expect(t.consume(key: k, rule: general, now: at).remaining == 48) }
        // Now 32 token buckets: the one with the earliest TAT (the newcomer's, 1.3 s from now) goes,
        // and the new key starts full, while every other token is still counted.
        #expect(t.consume(key: token(t, "second"), rule: general, now: at).remaining == 49)
        #expect(t.replaced == 2)
        for k in tokens { #expect(t.consume(key: k, rule: general, now: at).remaining == 47) }
        #expect(t.saturated == 0)
    }

    @Test func anAddressIsRefusedWhenItsWindowHoldsOnlyTokens() throws {
        let dir = TempDirectory()
        let t = try table(dir)
        let tokens = (0..<32).map { token(t, "t\($0)") }
        for (i, k) in tokens.enumerated() { _ = t.consume(key: k, rule: general, now: now + UInt64(i) * 1000) }
        let at = now + 100_000
        let address = t.key(address: "203.0.113.9")
        let refused = t.consume(key: address, rule: anonymous, now: at)
        #expect(!refused.allowed && refused.remaining == 0 && refused.limit == 30)
        // Asked back when the first token bucket is full again, 1.1 s on.
        #expect(refused.retryAfterSeconds == 2)
        #expect(refused.resetSeconds == (now + 1_200_000 + 999_999) / 1_000_000)
        #expect(t.saturated == 1 && t.replaced == 0)
        // Once t0's bucket is full again its slot is free to take: no replacement.
        let later = now + 1_200_010
        #expect(t.consume(key: address, rule: anonymous, now: later).remaining == 29)
        #expect(t.replaced == 0)
        for k in tokens.dropFirst() { #expect(t.consume(key: k, rule: general, now: later).remaining == 48) }
        // t0 comes back to a full window and takes the address's slot, not a token's.
        #expect(t.consume(key: tokens[0], rule: general, now: later).remaining == 49)
        #expect(t.replaced == 1 && t.saturated == 1)
    }

    /// Starting every newcomer full would let two networks taking turns in a full window evict and
    /// refill each other forever; sharing the evicted bucket gives them nothing.
    @Test func addressesTakingTurnsInAFullWindowGainNothing() throws {
        let dir = TempDirectory()
        let t = try table(dir)
        for i in 0..<32 {
            for _ in 0..<29 { _ = t.consume(key: t.key(address: "filler\(i)"), rule: anonymous, now: now) }
        }
        let x = t.key(address: "2001:db8::x"), y = t.key(address: "2001:db8::y")
        var admitted = 0
        for _ in 0..<100 {
            for k in [x, y] where t.consume(key: k, rule: anonymous, now: now).allowed { admitted += 1 }
        }
        #expect(admitted == 2)   // one each, from the last request left in the bucket each took over
        #expect(t.replaced == 2)
    }

    @Test func addressesRotatingThroughAFullWindowShareItsBuckets() throws {
        let dir = TempDirectory()
        let t = try table(dir)
        // Keys whose 24-bit tags collide would share a bucket by design, not by this rule: skip them.
        var tags = Set<UInt64>()
        let keys = (0..<2032).map { t.key(address: "a\($0)") }.filter { tags.insert(SharedRateTable.tag(of: $0)).inserted }
        for k in keys.prefix(32) { _ = t.consume(key: k, rule: anonymous, now: now) }
        let rotating = keys.dropFirst(32)
        var admitted = 0
        for k in rotating where t.consume(key: k, rule: anonymous, now: now).allowed { admitted += 1 }
        // Exactly what the 32 buckets had left, however many addresses ask.
        #expect(admitted == 32 * 29)
        #expect(t.replaced == UInt64(32 * 29))
        #expect(t.saturated == UInt64(rotating.count - 32 * 29))
    }

    @Test func tokensRacingAnAddressFloodAreEachAdmittedExactlyTheirLimit() async throws {
        let dir = TempDirectory()
        let t = try table(dir)
        let g = GCRA(limit: 100)
        let anonymous = self.anonymous
        let now = self.now
        let tokens = (0..<4).map { token(t, "racer\($0)") }
        let counts = await withTaskGroup(of: (Int, Int).self) { group in
            for (n, k) in tokens.enumerated() {
                group.addTask { (n, (0..<150).reduce(0) { a, _ in a + (t.consume(key: k, rule: g, now: now).allowed ? 1 : 0) }) }
            }
            for f in 0..<4 {
                group.addTask {
                    for i in 0..<2000 { _ = t.consume(key: t.key(address: "flood\(f).\(i)"), rule: anonymous, now: now) }
                    return (-1, 0)
                }
            }
            return await group.reduce(into: [Int: Int]()) { $0[$1.0] = $1.1 }
        }
        for n in 0..<4 { #expect(counts[n] == 100) }
    }
}
