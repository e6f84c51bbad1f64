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

    public mutating func add(_ method: String, _ pattern: String, _ handler: Handler) {
        let segments = pattern.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map { s -> Segment in
            s.hasPrefix(":") ? .parameter(String(s.dropFirst())) : .literal(Array(s.utf8))
        }
        routes.append(Route(method: method, pattern: Array(segments), handler: handler))
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
