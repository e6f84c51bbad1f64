import Logging
import RyzeCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// SPEC §7's rate-limit store: GCRA buckets on a Redis server every host shares, each request one
/// EVALSHA of `GCRAScript` (EVAL when the server answers NOSCRIPT: restarted, flushed, or new).
///
/// Failure is bounded: connecting waits at most `connectTimeout`, a command `commandTimeout`, and
/// a request makes at most one retry, only after a fast failure (a pooled connection the server
/// had closed); the defaults keep a request under 2 seconds. After a failure the store backs off
/// (100 ms doubling to 1 s): requests in that window are refused at once without touching the
/// network, so a dead server costs no thread more than one timeout. The first request after the
/// window tries again, so service resumes by itself within a second of Redis being back.
public final class RedisRateStore: RateLimitStore {
    /// When the next attempt may be made after failures, and the wait after the next failure.
    private struct Backoff {
        var retryAt: UInt64 = 0
        var delay: UInt64 = RedisRateStore.firstDelay
    }

    static let firstDelay: UInt64 = 100_000
    static let maxDelay: UInt64 = 1_000_000

    public let address: RedisAddress
    public let connectTimeout: Double
    public let commandTimeout: Double
    private let logger: Logger
    /// Unbounded: it settles at one connection per request thread that ever needed one.
    private let idle = IdlePool<RedisConnection>()
    private let backoff = Mutex(Backoff())
    private let unavailable = Atomic<UInt64>(0)
    private let connects = Atomic<UInt64>(0)

    public init(address: RedisAddress, connectTimeout: Double = 0.5, commandTimeout: Double = 0.5,
                logger: Logger = Logger(label: "ryze.ratelimit")) {
        self.address = address
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.logger = logger
    }

    public var unavailableCount: UInt64 { unavailable.load(ordering: .relaxed) }
    /// Connections opened so far (the first ones and every reconnect), for tests and logs.
    public var connectCount: UInt64 { connects.load(ordering: .relaxed) }
    /// Idle connections now (tests).
    var idleCount: Int { idle.count }

    public func consume(_ key: RateKey, rule: GCRA, clock: WallClock) throws(RateLimitUnavailable) -> GCRA.Decision {
        do {
            let reply = try evaluate(key: RedisKeys.name(key), rule: rule)
            return try decision(reply, rule: rule)
        } catch {
            unavailable.add(1, ordering: .relaxed)
            throw error
        }
    }

    /// The script's reply as SPEC §3's decision.
    func decision(_ reply: RedisReply, rule: GCRA) throws(RateLimitUnavailable) -> GCRA.Decision {
        guard case .array(let items) = reply, items.count == 3,
              let admitted = items[0].integerValue, let tat = items[1].integerValue, let now = items[2].integerValue,
              tat >= 0, now > 0 else {
            throw RateLimitUnavailable("unexpected reply from Redis: \(reply)")
        }
        let d = rule.decide(tat: UInt64(tat), now: UInt64(now))
        // Same numbers, same arithmetic: they agree unless the script is not ours.
        guard d.allowed == (admitted == 1) else { throw RateLimitUnavailable("the Redis script and the rule disagree") }
        return d
    }

    /// Runs the script for `key` on a connection from the pool, or a new one.
    func evaluate(key: String, rule: GCRA) throws(RateLimitUnavailable) -> RedisReply {
        let arguments = [key, String(rule.interval), String(rule.limit)]
        try admitAttempt()
        var pooled = idle.take()
        while true {
            let connection: RedisConnection
            let reused = pooled != nil
            if let p = pooled {
                connection = p
                pooled = nil
            } else {
                do {
                    connection = try RedisConnection(address: address, connectTimeout: connectTimeout, commandTimeout: commandTimeout)
                    connects.add(1, ordering: .relaxed)
                } catch {
                    throw failed("cannot connect to \(address): \(error)")
                }
            }
            do {
                var reply = try connection.command(["EVALSHA", GCRAScript.sha1, "1"] + arguments)
                if case .error(let e) = reply, e.hasPrefix("NOSCRIPT") {
                    reply = try connection.command(["EVAL", GCRAScript.source, "1"] + arguments)
                }
                if case .error(let e) = reply {
                    // The connection is sound; the server refused (out of memory, read-only replica...).
                    idle.give(connection)
                    throw failed("Redis refused the rate-limit script: \(e)")
                }
                succeeded()
                idle.give(connection)
                return reply
            } catch let error as RedisConnection.Failure {
                // A pooled connection the server has closed (it restarted) fails at once: one retry
                // on a new connection. Anything else, a timeout above all, is not retried.
                if reused && error.closed { continue }
                throw failed("Redis command failed: \(error)")
            } catch let error as RateLimitUnavailable {
                throw error
            } catch {
                throw failed("\(error)")
            }
        }
    }

    /// Throws while backing off after a failure, so that a dead server is not waited on by every
    /// request, even on a connection from the pool.
    private func admitAttempt() throws(RateLimitUnavailable) {
        let now = RedisRateStore.monotonicMicroseconds()
        let waiting = backoff.withLock { $0.retryAt > now }
        if waiting { throw RateLimitUnavailable("Redis at \(address) is unreachable; backing off") }
    }

    private func failed(_ reason: String) -> RateLimitUnavailable {
        let now = RedisRateStore.monotonicMicroseconds()
        let (first, delay) = backoff.withLock { b -> (Bool, UInt64) in
            let first = b.delay == RedisRateStore.firstDelay
            b.retryAt = now + b.delay
            let d = b.delay
            b.delay = min(b.delay * 2, RedisRateStore.maxDelay)
            return (first, d)
        }
        // One line per outage and per second of it, not one per request.
        if first || delay == RedisRateStore.maxDelay {
            logger.error("rate-limit store unavailable, answering 503 for \(delay / 1000) ms: \(reason)")
        }
        // Connections in the pool are likely as dead as this one: let them be found out one at a
        // time by the retry rule rather than dropped, which would cost connects when it was a blip.
        return RateLimitUnavailable(reason)
    }

    private func succeeded() {
        let recovered = backoff.withLock { b -> Bool in
            defer { b = Backoff() }
            return b.delay != RedisRateStore.firstDelay
        }
        if recovered { logger.notice("rate-limit store at \(address) reachable again") }
    }

    static func monotonicMicroseconds() -> UInt64 { MonotonicClock.nanoseconds() / 1000 }
}
