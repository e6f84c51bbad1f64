/// Exact, case-sensitive path matching over `/`-separated segments; `:name` captures one segment,
/// percent-decoded. Plain values, no protocols: a route is a method, a pattern and a value.
/// Matching walks the path's bytes in place and builds strings only for captured parameters.
///
/// The patterns are kept as a tree of segments (`nodes`): a path is matched by walking it once,
/// segment by segment, comparing each against the few literals that may follow the segments
/// before it, instead of against every route in turn. When patterns overlap (a literal and a
/// capture in the same place), every branch is walked: what matches is exactly the routes whose
/// whole pattern matches, and of those the first registered with the request's method wins, as
/// in a scan of the routes in order.
public struct Router<Handler: Sendable>: Sendable {
    struct Route: Sendable {
        var method: String
        var pattern: [Segment]
        var handler: Handler
        /// The captures' segment positions and names, in order (from `pattern`).
        var captures: [(position: Int, name: String)]
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

    /// One place in the tree: the segments so far. Node 0 is the root (nothing matched yet).
    /// Built as routes are added; `table` is the same tree flattened for matching.
    struct Node: Sendable {
        /// The literal segments that may come next, each with its node.
        var literals: [(segment: [UInt8], node: Int)] = []
        /// The node after a capture in this place, shared by every pattern with one here.
        var capture: Int?
        /// The routes whose patterns end here, by index into `routes` (registration order).
        var routes: [Int] = []
    }

    private var nodes: [Node] = [Node()]

    /// The tree in plain arrays of plain values, so that walking it copies and retains nothing:
    /// node `n`'s literals are `edges[flat[n].edges]`, their bytes `bytes[edge.bytes]`, its
    /// routes `ends[flat[n].ends]`. Rebuilt from `nodes` by each `register`.
    struct FlatNode: Sendable {
        var edges: Range<Int>
        var capture: Int   // -1: none
        var ends: Range<Int>
    }
    struct Edge: Sendable {
        var bytes: Range<Int>
        var node: Int
    }
    struct Table: Sendable {
        var flat: [FlatNode] = []
        var edges: [Edge] = []
        var bytes: [UInt8] = []
        var ends: [Int] = []
        /// Each route's method, packed (`methodKey`), by route index.
        var methods: [UInt64] = []
    }
    private var table = Table()

    /// A method of up to 8 bytes as one word, so that comparing methods while walking reads no
    /// String; `longMethod` for longer ones, which are compared as strings.
    static func methodKey(_ method: String) -> UInt64 {
        func pack(_ b: UnsafeBufferPointer<UInt8>) -> UInt64 {
            guard b.count <= 8 else { return longMethod }
            var key: UInt64 = 0
            for i in 0..<b.count { key |= UInt64(b[i]) << UInt64(8 * i) }
            return key
        }
        // Borrowed where the bytes are at hand (every literal method is): no copy of the String.
        if let key = method.utf8.withContiguousStorageIfAvailable(pack) { return key }
        var method = method
        return method.withUTF8(pack)
    }
    static var longMethod: UInt64 { .max }

    private mutating func flatten() {
        var t = Table()
        for node in nodes {
            let firstEdge = t.edges.count
            for (segment, next) in node.literals {
                t.edges.append(Edge(bytes: t.bytes.count..<t.bytes.count + segment.count, node: next))
                t.bytes += segment
            }
            let firstEnd = t.ends.count
            t.ends += node.routes
            t.flat.append(FlatNode(edges: firstEdge..<t.edges.count, capture: node.capture ?? -1, ends: firstEnd..<t.ends.count))
        }
        t.methods = routes.map { Router.methodKey($0.method) }
        table = t
    }

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
        let captures = segments.enumerated().compactMap { position, segment -> (position: Int, name: String)? in
            if case .parameter(let name) = segment { (position, name) } else { nil }
        }
        routes.append(Route(method: method, pattern: segments, handler: handler, captures: captures))
        var node = 0
        for segment in segments {
            switch segment {
            case .literal(let l):
                if let next = nodes[node].literals.first(where: { $0.segment == l })?.node {
                    node = next
                } else {
                    nodes.append(Node())
                    nodes[node].literals.append((l, nodes.count - 1))
                    node = nodes.count - 1
                }
            case .parameter:
                if let next = nodes[node].capture {
                    node = next
                } else {
                    nodes.append(Node())
                    nodes[node].capture = nodes.count - 1
                    node = nodes.count - 1
                }
            }
        }
        nodes[node].routes.append(routes.count - 1)
        flatten()
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
        // The first matching route with this method, and the matching routes of other methods.
        var walk = Walk(method: Router.methodKey(method))
        table.flat.withUnsafeBufferPointer { flat in
            table.edges.withUnsafeBufferPointer { edges in
                table.bytes.withUnsafeBufferPointer { literalBytes in
                    table.ends.withUnsafeBufferPointer { ends in
                        table.methods.withUnsafeBufferPointer { methods in
                            walk.tree = (flat, edges, literalBytes, ends, methods)
                            walk.path = bytes
                            walk.visit(0, from: 1)
                        }
                    }
                }
            }
        }
        if walk.method == Router.longMethod {
            walk.best = walk.others.filter { routes[$0].method == method }.min() ?? Int.max
            walk.others.removeAll { routes[$0].method == method }
        }
        if walk.best != Int.max {
            return .found(routes[walk.best].handler, parameters: parameters(routes[walk.best].captures, bytes))
        }
        var allowed: [String] = []
        for index in walk.others.sorted() where !allowed.contains(routes[index].method) { allowed.append(routes[index].method) }
        return allowed.isEmpty ? .notFound : .methodNotAllowed(allowed: allowed)
    }

    /// One walk of the tree for one path.
    private struct Walk {
        let method: UInt64
        var tree: (flat: UnsafeBufferPointer<FlatNode>, edges: UnsafeBufferPointer<Edge>, bytes: UnsafeBufferPointer<UInt8>,
                   ends: UnsafeBufferPointer<Int>, methods: UnsafeBufferPointer<UInt64>)
            = (.init(start: nil, count: 0), .init(start: nil, count: 0), .init(start: nil, count: 0), .init(start: nil, count: 0),
               .init(start: nil, count: 0))
        var path = UnsafeBufferPointer<UInt8>(start: nil, count: 0)
        /// The lowest index of a matching route with `method`; Int.max: none.
        var best = Int.max
        /// Matching routes of other methods (for `Allow`); empty, and never allocated, on the way
        /// to an ordinary answer.
        var others: [Int] = []

        init(method: UInt64) { self.method = method }

        /// Every route whose pattern matches the path from the segment at `start` on, the
        /// segments before it having led to `node`.
        mutating func visit(_ node: Int, from start: Int) {
            let end = Router.segmentEnd(path, from: start)
            let count = end - start
            // A segment may be empty (`//`, a trailing `/`); neither a literal nor a capture matches it.
            guard count > 0 else { return }
            let here = tree.flat[node]
            for e in here.edges {
                let edge = tree.edges[e]
                if edge.bytes.count == count && memcmp(tree.bytes.baseAddress! + edge.bytes.lowerBound, path.baseAddress! + start, count) == 0 {
                    enter(edge.node, after: end)
                }
            }
            if here.capture >= 0 { enter(here.capture, after: end) }
        }

        private mutating func enter(_ node: Int, after end: Int) {
            guard end == path.count else { return visit(node, from: end + 1) }
            for e in tree.flat[node].ends { ended(tree.ends[e]) }
        }

        private mutating func ended(_ route: Int) {
            // Methods too long to pack all share one key: the caller tells them apart.
            if method != Router.longMethod && tree.methods[route] == method {
                best = min(best, route)
            } else {
                others.append(route)
            }
        }
    }

    /// Where the segment starting at `start` ends: the next `/`, or the end of the path.
    static func segmentEnd(_ path: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        guard start < path.count, let slash = memchr(path.baseAddress! + start, Int32(UInt8(ascii: "/")), path.count - start) else {
            return path.count
        }
        return UnsafeRawPointer(slash).assumingMemoryBound(to: UInt8.self) - path.baseAddress!
    }

    /// The captured segments of a path its route's pattern matched.
    private func parameters(_ captures: [(position: Int, name: String)], _ bytes: UnsafeBufferPointer<UInt8>) -> Parameters {
        var result = Parameters()
        var position = 0
        var start = 1
        var next = 0
        while next < captures.count {
            let end = Router.segmentEnd(bytes, from: start)
            if captures[next].position == position {
                // Never empty: the walk matched a capture only to a non-empty segment.
                let segment = UnsafeBufferPointer(rebasing: bytes[start..<end])
                let raw = String(decoding: segment, as: UTF8.self)
                // Almost no segment has an escape: looked for in the bytes, without the generic
                // search over the String's view. An undecodable segment can never be a valid
                // name: kept raw, it fails the name rule.
                let escaped = memchr(segment.baseAddress!, Int32(UInt8(ascii: "%")), segment.count) != nil
                result.append(captures[next].name, escaped ? PercentDecoding.decode(raw) ?? raw : raw)
                next += 1
            }
            position += 1
            start = end + 1
        }
        return result
    }
}

#if canImport(Glibc)
import Glibc
#endif
