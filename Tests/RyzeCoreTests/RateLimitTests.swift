import Foundation
import Testing
@testable import RyzeCore

@Suite struct RateLimitTests {
    let now: UInt64 = 1_800_000_000_000_000   // µs

    @Test func gcraBurstThenSteadyRate() {
        let g = GCRA(limit: 100)
        #expect(g.interval == 600_000)
        var tat: UInt64 = 0
        for k in 0..<100 {
            let d = g.decide(tat: tat, now: now)
            #expect(d.allowed)
            #expect(d.remaining == 99 - k)
            tat = d.newTAT
        }
        let refused = g.decide(tat: tat, now: now)
        #expect(!refused.allowed)
        #expect(refused.remaining == 0)
        #expect(refused.retryAfterSeconds == 1)   // 600 ms, rounded up
        #expect(refused.resetSeconds == (now + 60_000_000) / 1_000_000)
        // 599 ms later still refused, 600 ms later one more.
        #expect(!g.decide(tat: tat, now: now + 599_999).allowed)
        let next = g.decide(tat: tat, now: now + 600_000)
        #expect(next.allowed)
        #expect(next.remaining == 0)
    }

    @Test func gcraResetAndRetryAfter() {
        let g = GCRA(limit: 20)   // one per 3 s
        let first = g.decide(tat: 0, now: now)
        #expect(first.remaining == 19)
        #expect(first.resetSeconds == (now + 3_000_000) / 1_000_000)
        var tat = first.newTAT
        for _ in 1..<20 { tat = g.decide(tat: tat, now: now).newTAT }
        let refused = g.decide(tat: tat, now: now)
        #expect(!refused.allowed)
        #expect(refused.retryAfterSeconds == 3)
        // A full period later the bucket is full again.
        #expect(g.decide(tat: tat, now: now + 60_000_000).remaining == 19)
    }

    @Test func storedTATWrapsWithoutAmbiguity() {
        // 2^40 units of 10 µs is about 127 days; a word written long ago must read as a full bucket.
        let w: UInt64 = (5 << 40) | ((now / 10 + 1000) & ((1 << 40) - 1))
        #expect(SharedRateTable.liveTAT(w, now: now) == now + 10_000)
        #expect(SharedRateTable.liveTAT(w, now: now + 10_000) == nil)
        #expect(SharedRateTable.liveTAT(w, now: now - 61_000_000 - 10_000_000_000) == nil)   // far behind: stale
        // A word left untouched for a whole wrap reads as live only if it lands in the minute
        // ahead of now (a chance of 1 in 10^5, and then it merely throttles for under a minute).
        #expect(SharedRateTable.liveTAT(w, now: now + (1 << 40) * 10 + 20_000) == nil)
        #expect(SharedRateTable.liveTAT(0, now: now) == nil)
    }

    @Test func highLimitsKeepTheirPrecision() {
        let g = GCRA(limit: 3_000_000)
        #expect(g.interval == 20)
        var tat: UInt64 = 0
        var admitted = 0
        for _ in 0..<3_000_100 {
            let d = g.decide(tat: tat, now: now)
            if d.allowed { admitted += 1; tat = d.newTAT }
        }
        #expect(admitted == 3_000_000)
    }

    @Test func sharedTableCountsPerKeyAcrossMappings() throws {
        let dir = TempDirectory()
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        let path = dir.path + "/rl"
        let t1 = try SharedRateTable(path: path, capacity: 256)
        let t2 = try SharedRateTable(path: path, capacity: 999)   // existing table keeps its size
        #expect(t2.capacity == 256)
        let g = GCRA(limit: 5)
        let k = t1.key(digest: TokenDigest(of: "x"), bucket: 1)
        var admitted = 0
        for i in 0..<10 where (i % 2 == 0 ? t1 : t2).consume(key: k, rule: g, now: now).allowed { admitted += 1 }
        #expect(admitted == 5)
        let other = t1.key(digest: TokenDigest(of: "y"), bucket: 1)
        #expect(t2.consume(key: other, rule: g, now: now).allowed)
        #expect(t1.key(digest: TokenDigest(of: "x"), bucket: 2) != k)
        #expect(t1.liveEntries(now: now) == 2)
    }

    @Test func fullTableNeverAdmitsUncountedAndExpiredSlotsAreReused() throws {
        let dir = TempDirectory()
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        let t = try SharedRateTable(path: dir.path + "/rl", capacity: 32)
        let g = GCRA(limit: 1)
        for i in 0..<32 { _ = t.consume(key: t.key(address: "10.0.0.\(i)"), rule: g, now: now) }
        #expect(t.liveEntries(now: now) == 32)
        let extra = t.key(address: "10.0.1.1")
        // No fail open: the newcomer would share the least indebted bucket, and every one is empty.
        #expect(!t.consume(key: extra, rule: g, now: now).allowed)
        #expect(!t.consume(key: extra, rule: g, now: now).allowed)
        #expect(t.saturated == 2)
        #expect(t.replaced == 0)
        // A minute later every bucket is full again, so its slot may be taken.
        let later = now + 60_000_010
        #expect(t.consume(key: extra, rule: g, now: later).allowed)
        #expect(!t.consume(key: extra, rule: g, now: later).allowed)
        #expect(t.saturated == 2)
    }

    @Test func concurrentThreadsAdmitExactlyTheLimit() async throws {
        let dir = TempDirectory()
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        let t = try SharedRateTable(path: dir.path + "/rl", capacity: 1024)
        let g = GCRA(limit: 100)
        let k = t.key(digest: TokenDigest(of: "burst"), bucket: 1)
        let now = self.now
        let admitted = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask { (0..<100).reduce(0) { n, _ in n + (t.consume(key: k, rule: g, now: now).allowed ? 1 : 0) } }
            }
            return await group.reduce(0, +)
        }
        #expect(admitted == 100)
    }

    @Test func applicationHeadersAnd429() throws {
        let t = try TestApp(limits: .init(perToken: 3, createPerToken: 2, perAddress: 2))
        for k in 0..<3 {
            let r = t.call("GET", "/api/instance/list", token: t.accountToken)
            #expect(r.status == .ok)
            #expect(r.header("X-RateLimit-Limit") == "3")
            #expect(r.header("X-RateLimit-Remaining") == String(2 - k))
        }
        let limited = t.call("GET", "/api/instance/list", token: t.accountToken)
        #expect(limited.status == .tooManyRequests)
        #expect(limited.message == "Rate limit exceeded. Try again later.")
        #expect(limited.header("Retry-After") == "20")
        #expect(limited.header("X-RateLimit-Remaining") == "0")
        // Creation has its own bucket.
        #expect(t.call("POST", "/api/instance/new", token: t.accountToken, body: #"{"name":"a"}"#).header("X-RateLimit-Limit") == "2")
        // Bad tokens are charged to the address, not the token.
        _ = t.call("GET", "/api/instance/list", token: "bad")
        _ = t.call("GET", "/api/instance/list")
        let anon = t.call("GET", "/api/instance/list", token: "bad")
        #expect(anon.status == .tooManyRequests)
        #expect(anon.header("X-RateLimit-Limit") == "2")
        t.clock.advance(20_000_000)
        #expect(t.call("GET", "/api/instance/list", token: t.accountToken).status == .ok)
    }
}
