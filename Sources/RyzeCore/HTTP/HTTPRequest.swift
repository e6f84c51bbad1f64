#if canImport(Glibc)
import Glibc
#endif

/// One request as the core sees it: already taken apart, no transport left in it. Made only from
/// the declared FastCGI parameters (`RequestParameter`), by `init(parameters:body:bodyTooLarge:)`
/// in production and by `init(fastCGIParameters:body:bodyTooLarge:)` in tests and tools, which
/// goes through the same scan and the same code.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The raw path as the client sent it (percent-encoding intact, no query).
    public var path: String
    /// The raw query string, without the leading `?`.
    public var query: String
    /// The declared headers, and no others.
    public var headers: RequestHeaders
    public var remoteAddress: String
    public var body: [UInt8]
    /// Set by the adapter when the declared body exceeded the cap; `body` is then empty.
    public var bodyTooLarge: Bool

    /// The request the parameters describe, with the body the adapter read. Copies everything it
    /// keeps out of the parameters' strings, which die with libfcgi's request.
    ///
    /// - Path: REQUEST_URI up to its `?`; else DOCUMENT_URI; else `/`.
    /// - Query: QUERY_STRING when sent (nginx's stock parameters, after rewrites), else what
    ///   follows the `?` of REQUEST_URI, else empty.
    /// - Method: REQUEST_METHOD, `GET` when absent.
    public init(parameters p: RequestParameters, body: [UInt8] = [], bodyTooLarge: Bool = false) {
        var path = "/"
        var queryInURI: UnsafePointer<CChar>?
        if let uri = p[.requestURI] {
            queryInURI = strchr(uri, Int32(UInt8(ascii: "?"))).map { UnsafePointer($0) + 1 }
            let count = queryInURI.map { $0 - 1 - uri } ?? strlen(uri)
            path = String(decoding: UnsafeRawBufferPointer(start: uri, count: count), as: UTF8.self)
        } else if let d = p[.documentURI] {
            path = String(cString: d)
        }
        self.method = p[.requestMethod].map(HTTPRequest.method) ?? "GET"
        self.path = path
        self.query = (p[.queryString] ?? queryInURI).map { String(cString: $0) } ?? ""
        self.headers = RequestHeaders(p)
        self.remoteAddress = p[.remoteAddress].map { String(cString: $0) } ?? ""
        self.body = body
        self.bodyTooLarge = bodyTooLarge
    }

    /// The same request from FastCGI parameters given as strings (names as nginx sends them),
    /// laid out as libfcgi does and scanned as the adapter does. Undeclared names are ignored.
    public init(fastCGIParameters: [String: String], body: [UInt8] = [], bodyTooLarge: Bool = false) {
        self = RequestParameters.withEnvironment(fastCGIParameters) {
            HTTPRequest(parameters: $0, body: body, bodyTooLarge: bodyTooLarge)
        }
    }

    /// The API's methods come back as literals (no bytes copied); anything else as sent.
    /// (Compared one by one, without an array of them: the array literal was built per request.)
    private static func method(_ value: UnsafePointer<CChar>) -> String {
        if equals(value, "GET") { return "GET" }
        if equals(value, "POST") { return "POST" }
        if equals(value, "DELETE") { return "DELETE" }
        if equals(value, "OPTIONS") { return "OPTIONS" }
        return String(cString: value)
    }

    /// Whether the C string `value` is exactly `literal`; reads no byte of `value` past its NUL.
    @inline(__always)
    private static func equals(_ value: UnsafePointer<CChar>, _ literal: StaticString) -> Bool {
        let bytes = literal.utf8Start
        for i in 0..<literal.utf8CodeUnitCount where UInt8(bitPattern: value[i]) != bytes[i] { return false }
        return value[literal.utf8CodeUnitCount] == 0
    }

    /// First value of a query parameter, percent-decoded (`+` means space, as in forms).
    ///
    /// A value whose escapes are malformed (`%ZZ`, a `%` at the end, not UTF-8 once decoded) comes
    /// back as sent, never as `""`: an empty value means something of its own (`?label=` is
    /// `default`), and a name with a `%` in it is never a valid label or instance name, so
    /// `?label=%ZZ` finds nothing (404) instead of deleting `default`.
    public func queryValue(_ name: String) -> String? {
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let rawKey = parts.first, PercentDecoding.decode(rawKey, plusIsSpace: true) == name else { continue }
            return parts.count > 1 ? PercentDecoding.decode(parts[1], plusIsSpace: true) ?? String(parts[1]) : ""
        }
        return nil
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
