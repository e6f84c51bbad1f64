import Foundation
import RyzeCore
import Testing
@testable import RyzeRedis

/// The Lua script and the store against a real redis-server (one per test, a few ms to start).
/// Serialized: the tests that stop the server would otherwise slow the others' connects.
@Suite(.serialized)
struct RedisRateStoreTests {
    let digest = TokenDigest(of: "tok_redis_test")
    let clock = WallClock.system

    func store(_ server: RedisServer, port: Int? = nil) -> RedisRateStore {
        RedisRateStore(address: RedisAddress(host: "127.0.0.1", port: port ?? server.port))
    }

    func connection(_ server: RedisServer) throws -> RedisConnection {
        try RedisConnection(address: RedisAddress(host: "127.0.0.1", port: server.port), connectTimeout: 1, commandTimeout: 1)
    }

    @Test func theScriptAdmitsTheBurstThenRefusesWithTheTableHeaders() throws {
        let server = try RedisServer()
        let s = store(server)
        let rule = GCRA(limit: 5)
        var remaining: [Int] = []
        for _ in 0..<5 {
            let d = try s.consume(.token(digest, bucket: 1), rule: rule, clock: clock)
            #expect(d.allowed && d.limit == 5 && d.retryAfterSeconds == nil)
            remaining.append(d.remaining)
        }
        #expect(remaining == [4, 3, 2, 1, 0])
        let refused = try s.consume(.token(digest, bucket: 1), rule: rule, clock: clock)
        #expect(!refused.allowed && refused.remaining == 0)
        // 5 a minute: one every 12 s; the first was admitted a moment ago.
        #expect((11...12).contains(refused.retryAfterSeconds ?? 0))
        let now = clock.nowMicroseconds() / 1_000_000
        #expect(refused.resetSeconds >= now + 59 && refused.resetSeconds <= now + 61)
        // Another bucket of the same token, and another token, are untouched.
        #expect(try s.consume(.token(digest, bucket: 2), rule: rule, clock: clock).remaining == 4)
        #expect(try s.consume(.token(TokenDigest(of: "other"), bucket: 1), rule: rule, clock: clock).remaining == 4)
        #expect(s.unavailableCount == 0)
    }

    @Test func theStoredTATIsAnExactIntegerWithAnExpiry() throws {
        let server = try RedisServer()
        let s = store(server)
        _ = try s.consume(.token(digest, bucket: 1), rule: GCRA(limit: 100), clock: clock)
        let c = try connection(server)
        let name = RedisKeys.name(.token(digest, bucket: 1))
        guard case .string(let bytes) = try c.command(["GET", name]) else { Issue.record("no TAT stored"); return }
        let text = String(decoding: bytes, as: UTF8.self)
        // Lua's tostring would have written 1.7e+15 and lost the microseconds.
        #expect(text.allSatisfy(\.isNumber) && (UInt64(text) ?? 0) > 1_000_000_000_000_000)
        let pttl = try c.command(["PTTL", name]).integerValue ?? -1
        #expect(pttl > 0 && pttl <= 600)
    }

    @Test func noscriptFallsBackToEval() throws {
        let server = try RedisServer()
        let s = store(server)
        let rule = GCRA(limit: 3)
        _ = try s.consume(.token(digest, bucket: 1), rule: rule, clock: clock)
        let c = try connection(server)
        #expect(try c.command(["SCRIPT", "FLUSH"]) == .status("OK"))
        #expect(try c.command(["SCRIPT", "EXISTS", GCRAScript.sha1]) == .array([.integer(0)]))
        #expect(try s.consume(.token(digest, bucket: 1), rule: rule, clock: clock).remaining == 1)
        #expect(try c.command(["SCRIPT", "EXISTS", GCRAScript.sha1]) == .array([.integer(1)]))
    }

    @Test func keysAreHashedAndAlikeOnEveryHost() throws {
        let token = "tok_secret_value"
        let name = RedisKeys.name(.token(TokenDigest(of: token), bucket: 1))
        #expect(!name.contains(token) && !name.contains(TokenDigest(of: token).bytes.map { String(format: "%02x", $0) }.joined()))
        #expect(name == RedisKeys.name(.token(TokenDigest(of: token), bucket: 1)))
        #expect(name != RedisKeys.name(.token(TokenDigest(of: token), bucket: 2)))
        let a = RedisKeys.name(.network(ClientNetwork(remoteAddress: "2001:db8:1:2::1")))
        #expect(a == RedisKeys.name(.network(ClientNetwork(remoteAddress: "2001:DB8:1:2:ffff::9"))))
        #expect(a != RedisKeys.name(.network(ClientNetwork(remoteAddress: "2001:db8:1:3::1"))))
        #expect(!RedisKeys.name(.network(ClientNetwork(remoteAddress: "198.51.100.7"))).contains("198.51"))
    }

    @Test func twoHostsShareOneBucket() throws {
        let server = try RedisServer()
        let hosts = [store(server), store(server)]
        let rule = GCRA(limit: 40)
        let admitted = Atomic(0)
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for _ in 0..<15 where (try? hosts[worker % 2].consume(.token(digest, bucket: 1), rule: rule, clock: clock).allowed) == true {
                admitted.add(1)
            }
        }
        // 120 tried within well under a second: the burst of 40, and at most one refill (1.5 s each).
        #expect((40...41).contains(admitted.value))
    }

    @Test func unreachableIsRefusedQuicklyThenBacksOffThenResumes() throws {
        let server = try RedisServer()
        let s = store(server)
        let rule = GCRA(limit: 100)
        #expect(try s.consume(.token(digest, bucket: 1), rule: rule, clock: clock).allowed)
        server.stop()
        var start = Date()
        #expect(throws: RateLimitUnavailable.self) { try s.consume(.token(digest, bucket: 1), rule: rule, clock: clock) }
        #expect(Date().timeIntervalSince(start) < 2)
        // Backing off: refused without dialling.
        let connects = s.connectCount
        start = Date()
        #expect(throws: RateLimitUnavailable.self) { try s.consume(.token(digest, bucket: 1), rule: rule, clock: clock) }
        #expect(Date().timeIntervalSince(start) < 0.1 && s.connectCount == connects)
        #expect(s.unavailableCount == 2)
        try server.start()
        // Within the longest backoff (1 s) it is back by itself.
        var resumed = false
        let deadline = Date().addingTimeInterval(3)
        while Date() < deadline && !resumed {
            resumed = (try? s.consume(.token(digest, bucket: 1), rule: rule, clock: clock)) != nil
            if !resumed { usleep(50_000) }
        }
        #expect(resumed)
    }

    @Test func aRestartedServerIsReconnectedOnTheFirstRequest() throws {
        let server = try RedisServer()
        let s = store(server)
        let rule = GCRA(limit: 100)
        _ = try s.consume(.token(digest, bucket: 1), rule: rule, clock: clock)
        server.stop()
        try server.start()
        // The pooled connection was closed by the old server: one retry on a new one, no 503.
        #expect(try s.consume(.token(digest, bucket: 1), rule: rule, clock: clock).remaining == 99)
        #expect(s.unavailableCount == 0)
    }

    @Test func aServerThatDoesNotAnswerTimesOut() throws {
        let server = try RedisServer()
        let s = RedisRateStore(address: RedisAddress(host: "127.0.0.1", port: server.port), connectTimeout: 0.5, commandTimeout: 0.3)
        let rule = GCRA(limit: 100)
        _ = try s.consume(.token(digest, bucket: 1), rule: rule, clock: clock)
        // A frozen server: connects are still accepted by the kernel, commands never answered.
        kill(server.pid!, SIGSTOP)
        defer { kill(server.pid!, SIGCONT) }
        let start = Date()
        #expect(throws: RateLimitUnavailable.self) { try s.consume(.token(digest, bucket: 1), rule: rule, clock: clock) }
        #expect(Date().timeIntervalSince(start) < 1.5)
    }

    @Test func addressesParse() throws {
        #expect(try RedisAddress.parse("redis://127.0.0.1:6380").get() == RedisAddress(host: "127.0.0.1", port: 6380))
        #expect(try RedisAddress.parse("redis://cache/2").get() == RedisAddress(host: "cache", port: 6379, database: 2))
        #expect(try RedisAddress.parse("redis://[::1]:7000/1").get() == RedisAddress(host: "::1", port: 7000, database: 1))
        for bad in ["http://x:1", "redis://", "redis://h:0", "redis://h:x", "redis://u:p@h:1", "redis://h:1/x"] {
            #expect(throws: RedisAddress.ParseError.self) { try RedisAddress.parse(bad).get() }
        }
    }
}

/// A counter for the concurrent test.
final class Atomic: @unchecked Sendable {
    private let lock = NSLock()
    private var v: Int
    init(_ v: Int) { self.v = v }
    func add(_ n: Int) { lock.lock(); v += n; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return v }
}
