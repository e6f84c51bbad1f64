/// Where the Redis server is: `redis://HOST:PORT[/DB]` (port 6379 when left out). No password, no
/// TLS: hiredis 0.14 has no TLS, and the server is expected on a private network or loopback.
/// A HOST name is resolved at each new connection within its connect timeout (HostResolver).
public struct RedisAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var database: Int

    public init(host: String, port: Int = 6379, database: Int = 0) {
        self.host = host
        self.port = port
        self.database = database
    }

    /// The address, or why `url` is not of that form.
    public static func parse(_ url: String) -> Result<RedisAddress, ParseError> {
        guard url.hasPrefix("redis://") else { return .failure(ParseError("must start with redis://")) }
        var rest = Substring(url.dropFirst("redis://".count))
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let db = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !db.isEmpty {
                guard let n = Int(db), n >= 0, n <= 65_535 else { return .failure(ParseError("the database after / must be a number")) }
                database = n
            }
        }
        guard !rest.contains("@"), !rest.contains("?") else { return .failure(ParseError("takes no user, password or options")) }
        var host = rest, port = 6379
        if rest.hasPrefix("[") {
            // [IPv6]:port
            guard let close = rest.firstIndex(of: "]") else { return .failure(ParseError("unclosed [")) }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = Int(after.dropFirst()) else { return .failure(ParseError("bad port")) }
                port = p
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            guard let p = Int(rest[rest.index(after: colon)...]) else { return .failure(ParseError("bad port")) }
            port = p
        }
        guard !host.isEmpty else { return .failure(ParseError("has no host")) }
        guard (1...65_535).contains(port) else { return .failure(ParseError("port must be between 1 and 65535")) }
        return .success(RedisAddress(host: String(host), port: port, database: database))
    }

    public struct ParseError: Error, CustomStringConvertible {
        public var description: String
        init(_ d: String) { description = d }
    }

    public var description: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return "redis://\(h):\(port)/\(database)"
    }
}
