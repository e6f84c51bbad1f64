/// One request as the core sees it: already taken apart by the adapter, no transport left in it.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The raw path as the client sent it (percent-encoding intact, no query).
    public var path: String
    /// The raw query string, without the leading `?`.
    public var query: String
    public var headers: HTTPHeaders
    public var remoteAddress: String
    public var body: [UInt8]
    /// Set by the adapter when the declared body exceeded the cap; `body` is then empty.
    public var bodyTooLarge: Bool

    public init(
        method: String,
        path: String,
        query: String = "",
        headers: HTTPHeaders = HTTPHeaders(),
        remoteAddress: String = "",
        body: [UInt8] = [],
        bodyTooLarge: Bool = false
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.remoteAddress = remoteAddress
        self.body = body
        self.bodyTooLarge = bodyTooLarge
    }

    /// First value of a query parameter, percent-decoded (`+` means space, as in forms).
    public func queryValue(_ name: String) -> String? {
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let rawKey = parts.first, PercentDecoding.decode(rawKey, plusIsSpace: true) == name else { continue }
            return parts.count > 1 ? PercentDecoding.decode(parts[1], plusIsSpace: true) ?? "" : ""
        }
        return nil
    }
}

/// The request headers the API reads. Names are stored lower-case; look them up lower-case
/// (the lookup does not fold case, so the request path allocates nothing for it). The three the
/// API reads on every request have slots of their own: no array is allocated for them.
public struct HTTPHeaders: Sendable {
    private var token: String?
    private var authorization: String?
    private var origin: String?
    private var others: [(String, String)] = []

    public init(_ pairs: [(String, String)] = []) {
        for (k, v) in pairs { self[k.lowercased()] = v }
    }

    /// The adapter's way in: the three headers the API reads, nothing to look up.
    public init(token: String?, authorization: String?, origin: String?) {
        self.token = token
        self.authorization = authorization
        self.origin = origin
    }

    public subscript(name: String) -> String? {
        get {
            switch name {
            case "token": return token
            case "authorization": return authorization
            case "origin": return origin
            default: return others.first(where: { $0.0 == name })?.1
            }
        }
        set {
            let n = name.lowercased()
            switch n {
            case "token": token = newValue
            case "authorization": authorization = newValue
            case "origin": origin = newValue
            default:
                others.removeAll(where: { $0.0 == n })
                if let v = newValue { others.append((n, v)) }
            }
        }
    }
}

public enum PercentDecoding {
    /// Decodes `%XX` escapes; nil when an escape is malformed or the result is not UTF-8.
    /// A string with nothing to decode comes back as it is, without a copy.
    public static func decode(_ s: String, plusIsSpace: Bool = false) -> String? {
        hasEscapes(s.utf8, plusIsSpace) ? decodeEscapes(s.utf8, plusIsSpace) : s
    }

    public static func decode(_ s: Substring, plusIsSpace: Bool = false) -> String? {
        hasEscapes(s.utf8, plusIsSpace) ? decodeEscapes(s.utf8, plusIsSpace) : String(s)
    }

    private static func hasEscapes<C: Collection<UInt8>>(_ utf8: C, _ plusIsSpace: Bool) -> Bool {
        utf8.contains(UInt8(ascii: "%")) || (plusIsSpace && utf8.contains(UInt8(ascii: "+")))
    }

    private static func decodeEscapes<C: Collection<UInt8>>(_ utf8: C, _ plusIsSpace: Bool) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count)
        var it = utf8.makeIterator()
        while let c = it.next() {
            if c == UInt8(ascii: "%") {
                guard let h = it.next().flatMap(hexValue), let l = it.next().flatMap(hexValue) else { return nil }
                out.append(h << 4 | l)
            } else if plusIsSpace && c == UInt8(ascii: "+") {
                out.append(UInt8(ascii: " "))
            } else {
                out.append(c)
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
