/// Exact, case-sensitive path matching over `/`-separated segments; `:name` captures one segment,
/// percent-decoded. Plain values, no protocols: a route is a method, a pattern and a value.
/// Matching walks the path's bytes in place and builds strings only for captured parameters.
public struct Router<Handler: Sendable>: Sendable {
    struct Route: Sendable {
        var method: String
        var pattern: [Segment]
        var handler: Handler
    }

    enum Segment: Equatable, Sendable {
        case literal([UInt8])
        case parameter(String)
    }

    /// Captured segments. Every route of this API has at most one, so the first has a slot of
    /// its own and matching allocates no array.
    public struct Parameters: Sendable {
        private var first: (name: String, value: String)?
        private var more: [(String, String)] = []

        mutating func append(_ name: String, _ value: String) {
            if first == nil { first = (name, value) } else { more.append((name, value)) }
        }

        public subscript(name: String) -> String? {
            if let first, first.name == name { return first.value }
            return more.first(where: { $0.0 == name })?.1
        }
    }

    public enum Match {
        case found(Handler, parameters: Parameters)
        /// The path exists with other methods; they go in the `Allow` header.
        case methodNotAllowed(allowed: [String])
        case notFound
    }

    private var routes: [Route] = []

    public init() {}

    /// A route the router refuses: a programming error in the route table.
    public enum RouteError: Error, Equatable, CustomStringConvertible {
        case malformed(pattern: String, reason: String)
        case duplicate(method: String, pattern: String)

        public var description: String {
            switch self {
            case let .malformed(pattern, reason): return "malformed route pattern \(pattern): \(reason)"
            case let .duplicate(method, pattern): return "route \(method) \(pattern) registered twice"
            }
        }
    }

    /// Adds a route; a malformed pattern or a second route of the same method and shape stops
    /// the process with the reason. The route table is fixed at start, so every test finds it.
    public mutating func add(_ method: String, _ pattern: String, _ handler: Handler) {
        do { try register(method, pattern, handler) } catch { preconditionFailure("\(error)") }
    }

    /// `pattern` is `/`-separated: non-empty literal segments of URL path characters, or
    /// `:name` captures with distinct identifier names. Two routes of one method may not have the
    /// same shape (the same literals with captures in the same places): the second could never match.
    public mutating func register(_ method: String, _ pattern: String, _ handler: Handler) throws(RouteError) {
        guard !method.isEmpty, method.utf8.allSatisfy({ $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) else {
            throw .malformed(pattern: pattern, reason: "method \(method) is not an upper-case token")
        }
        guard pattern.hasPrefix("/") else { throw .malformed(pattern: pattern, reason: "it does not start with /") }
        var segments: [Segment] = []
        var names: Set<String> = []
        for s in pattern.split(separator: "/", omittingEmptySubsequences: false).dropFirst() {
            guard !s.isEmpty else { throw .malformed(pattern: pattern, reason: "empty segment") }
            if s.hasPrefix(":") {
                let name = String(s.dropFirst())
                guard let first = name.utf8.first, !(first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9")),
                      name.utf8.allSatisfy({ Router.isIdentifierByte($0) }) else {
                    throw .malformed(pattern: pattern, reason: "capture name :\(name) is not an identifier")
                }
                guard names.insert(name).inserted else { throw .malformed(pattern: pattern, reason: "capture :\(name) appears twice") }
                segments.append(.parameter(name))
            } else {
                guard s.utf8.allSatisfy({ Router.isLiteralByte($0) }) else {
                    throw .malformed(pattern: pattern, reason: "segment \(s) holds characters a path cannot match literally")
                }
                segments.append(.literal(Array(s.utf8)))
            }
        }
        let shape = Router.shape(segments)
        if routes.contains(where: { $0.method == method && Router.shape($0.pattern) == shape }) {
            throw .duplicate(method: method, pattern: pattern)
        }
        routes.append(Route(method: method, pattern: segments, handler: handler))
    }

    /// Literals as they are, every capture alike: two patterns of one shape match the same paths.
    private static func shape(_ segments: [Segment]) -> [[UInt8]?] {
        segments.map { if case .literal(let l) = $0 { return l } else { return nil } }
    }

    private static func isIdentifierByte(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
            || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "_")
    }

    /// Unreserved and sub-delimiter characters, `:` and `@` (RFC 3986 pchar without `%`): a
    /// literal with `%` would never equal a path compared before decoding.
    private static func isLiteralByte(_ c: UInt8) -> Bool {
        isIdentifierByte(c) || Array("-._~!$&'()*+,;=:@".utf8).contains(c)
    }

    public func match(method: String, path: String) -> Match {
        var path = path
        return path.withUTF8 { match(method: method, bytes: $0) }
    }

    private func match(method: String, bytes: UnsafeBufferPointer<UInt8>) -> Match {
        guard bytes.first == UInt8(ascii: "/") else { return .notFound }
        var allowed: [String] = []
        for route in routes where matches(route.pattern, bytes) {
            if route.method == method {
                return .found(route.handler, parameters: parameters(route.pattern, bytes))
            }
            if !allowed.contains(route.method) { allowed.append(route.method) }
        }
        return allowed.isEmpty ? .notFound : .methodNotAllowed(allowed: allowed)
    }

    /// Calls `body` with each segment's range, in order; stops early when it returns false.
    private func forEachSegment(_ bytes: UnsafeBufferPointer<UInt8>, _ body: (Range<Int>) -> Bool) {
        var start = 1
        while true {
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "/") { end += 1 }
            if !body(start..<end) || end == bytes.count { return }
            start = end + 1
        }
    }

    private func matches(_ pattern: [Segment], _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        var ok = true
        forEachSegment(bytes) { range in
            guard index < pattern.count else { ok = false; return false }
            switch pattern[index] {
            case .literal(let l):
                ok = l.count == range.count && l.withUnsafeBufferPointer { lb in
                    memcmp(lb.baseAddress!, bytes.baseAddress! + range.lowerBound, range.count) == 0
                }
            case .parameter:
                ok = !range.isEmpty
            }
            index += 1
            return ok
        }
        return ok && index == pattern.count
    }

    private func parameters(_ pattern: [Segment], _ bytes: UnsafeBufferPointer<UInt8>) -> Parameters {
        var result = Parameters()
        var index = 0
        forEachSegment(bytes) { range in
            if case .parameter(let name) = pattern[index] {
                let raw = String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
                // An undecodable segment can never be a valid name: kept raw, it fails the name rule.
                result.append(name, PercentDecoding.decode(raw) ?? raw)
            }
            index += 1
            return true
        }
        return result
    }
}

#if canImport(Glibc)
import Glibc
#endif
