import Crypto
import RyzeCore

/// GCRA on the Redis server, modelled on go-redis/redis_rate: one bucket per call, one round trip,
/// and Redis's own clock (`TIME`), so the hosts' clocks never meet. Same arithmetic as `GCRA` in
/// integer microseconds (exact: Lua's doubles hold integers up to 2^53, and a Unix time in µs is
/// about 2^51): the script decides and stores; the worker recomputes the headers from the TAT it
/// read and the server's now with `GCRA.decide`, so one host's answers look exactly like another's.
///
/// KEYS[1] the bucket; ARGV[1] the emission interval (µs), ARGV[2] the limit.
/// Returns {1 admitted / 0 refused, the TAT before this request (µs, 0 when none), now (µs)}.
/// The key expires when its bucket is full again, so idle buckets cost Redis nothing.
enum GCRAScript {
    static let source = """
        if redis.replicate_commands then redis.replicate_commands() end
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local interval = tonumber(ARGV[1])
        local tolerance = interval * tonumber(ARGV[2])
        local tat = tonumber(redis.call('GET', KEYS[1])) or 0
        local candidate = math.max(tat, now) + interval
        if candidate - now > tolerance then
          return {0, tat, now}
        end
        redis.call('SET', KEYS[1], string.format('%d', candidate), 'PX', math.ceil((candidate - now) / 1000))
        return {1, tat, now}
        """

    /// What EVALSHA names it by: SHA-1 of the source, lower-case hex.
    static let sha1: String = Hex.lowercase(Insecure.SHA1.hash(data: Array(source.utf8)))
}
