import CHiredis
import RyzeCore
#if canImport(Glibc)
import Glibc
#endif

/// What a command got back.
enum RedisReply: Equatable {
    case integer(Int64)
    case string([UInt8])
    case status(String)
    case error(String)
    case array([RedisReply])
    case null

    init(_ r: UnsafePointer<redisReply>) {
        let reply = r.pointee
        func text() -> [UInt8] {
            guard let s = reply.str else { return [] }
            return Array(UnsafeRawBufferPointer(start: s, count: reply.len))
        }
        switch reply.type {
        case REDIS_REPLY_INTEGER: self = .integer(reply.integer)
        case REDIS_REPLY_STRING: self = .string(text())
        case REDIS_REPLY_STATUS: self = .status(String(decoding: text(), as: UTF8.self))
        case REDIS_REPLY_ERROR: self = .error(String(decoding: text(), as: UTF8.self))
        case REDIS_REPLY_ARRAY:
            var items: [RedisReply] = []
            for k in 0..<reply.elements {
                if let e = reply.element[k] { items.append(RedisReply(e)) } else { items.append(.null) }
            }
            self = .array(items)
        default: self = .null
        }
    }

    /// An integer, or a string of decimal digits.
    var integerValue: Int64? {
        switch self {
        case .integer(let n): return n
        case .string(let b): return Int64(String(decoding: b, as: UTF8.self))
        default: return nil
        }
    }
}

/// One blocking hiredis connection with connect and command timeouts. Not thread-safe (hiredis
/// 0.14's `redisContext` is not): one thread uses it at a time, handed over by `RedisPool`.
/// After a failed command the context is unusable (hiredis keeps its error): drop it.
final class RedisConnection {
    struct Failure: Error, CustomStringConvertible {
        var description: String
        /// The server closed the connection or refused it, as opposed to a timeout: worth one
        /// immediate retry on a new connection when the old one had been idle in the pool.
        var closed: Bool
    }

    private let context: UnsafeMutablePointer<redisContext>

    /// Connects within `connectTimeout` in all, name resolution included: hiredis would call
    /// getaddrinfo itself, which has no deadline, so it is handed addresses (HostResolver) and
    /// tries them in turn with what is left of the time.
    init(address: RedisAddress, connectTimeout: Double, commandTimeout: Double) throws(Failure) {
        let deadline = MonotonicClock.nanoseconds() + UInt64(connectTimeout * 1e9)
        let addresses: [String]
        do {
            addresses = try HostResolver.shared.addresses(of: address.host, deadline: deadline)
        } catch {
            throw Failure(description: error.description, closed: false)
        }
        var last = Failure(description: "no address", closed: false)
        var connected: UnsafeMutablePointer<redisContext>?
        for a in addresses {
            let now = MonotonicClock.nanoseconds()
            guard now < deadline else { last = Failure(description: "connecting timed out", closed: false); break }
            guard let c = redisConnectWithTimeout(a, Int32(address.port), RedisConnection.timeval(Double(deadline - now) / 1e9)) else {
                throw Failure(description: "cannot allocate a hiredis context", closed: false)
            }
            if c.pointee.err == 0 { connected = c; break }
            last = RedisConnection.failure(c)
            redisFree(c)
        }
        guard let c = connected else { throw last }
        context = c
        guard redisSetTimeout(c, RedisConnection.timeval(commandTimeout)) == REDIS_OK else {
            let failure = RedisConnection.failure(c)
            redisFree(c)
            throw failure
        }
        _ = redisEnableKeepAlive(c)
        if address.database != 0 {
            let r = try command(["SELECT", String(address.database)])
            if case .error(let e) = r { throw Failure(description: "SELECT \(address.database): \(e)", closed: false) }
        }
    }

    deinit { redisFree(context) }

    /// Sends one command and waits for its reply; a server error is a reply, not a failure.
    func command(_ arguments: [String]) throws(Failure) -> RedisReply {
        var pointers: [UnsafePointer<CChar>?] = []
        var lengths: [Int] = []
        pointers.reserveCapacity(arguments.count)
        for a in arguments {
            let copy = strdup(a)!
            pointers.append(UnsafePointer(copy))
            lengths.append(strlen(copy))
        }
        defer { for p in pointers { free(UnsafeMutablePointer(mutating: p)) } }
        let raw = pointers.withUnsafeMutableBufferPointer { argv in
            lengths.withUnsafeBufferPointer { redisCommandArgv(context, Int32(arguments.count), argv.baseAddress, $0.baseAddress) }
        }
        guard let raw else { throw RedisConnection.failure(context) }
        defer { freeReplyObject(raw) }
        return RedisReply(raw.assumingMemoryBound(to: redisReply.self))
    }

    static func failure(_ c: UnsafeMutablePointer<redisContext>) -> Failure {
        let text = withUnsafeBytes(of: c.pointee.errstr) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        let err = c.pointee.err
        // EOF: the server closed it (restarted, timeout, killed). A refused connect is REDIS_ERR_IO
        // with errno ECONNREFUSED; a timeout is REDIS_ERR_IO with EAGAIN/ETIMEDOUT/EINPROGRESS.
        let closed = err == REDIS_ERR_EOF || text.contains("reset by peer") || text.contains("Broken pipe")
        return Failure(description: text.isEmpty ? "hiredis error \(err)" : text, closed: closed)
    }

    static func timeval(_ seconds: Double) -> Glibc.timeval {
        let whole = seconds.rounded(.down)
        return Glibc.timeval(tv_sec: Int(whole), tv_usec: Int((seconds - whole) * 1_000_000))
    }
}
