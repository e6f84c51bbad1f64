/// Exact, case-sensitive path matching over `/`-separated segments; `:name` captures one segment,
/// percent-decoded. Plain values, no protocols: a route is a method, a pattern and a value.
public struct Router<Handler: Sendable>: Sendable {
    struct Route: Sendable {
        var method: String
        var pattern: [Segment]
        var handler: Handler
    }

    enum Segment: Equatable, Sendable {
        case literal(String)
        case parameter(String)
    }

    public enum Match {
        case found(Handler, parameters: [String: String])
        /// The path exists with other methods; they go in the `Allow` header.
        case methodNotAllowed(allowed: [String])
        case notFound
    }

    private var routes: [Route] = []

    public init() {}

    public mutating func add(_ method: String, _ pattern: String, _ handler: Handler) {
        let segments = pattern.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map { s -> Segment in
            s.hasPrefix(":") ? .parameter(String(s.dropFirst())) : .literal(String(s))
        }
        routes.append(Route(method: method, pattern: Array(segments), handler: handler))
    }

    public func match(method: String, path: String) -> Match {
        guard path.hasPrefix("/") else { return .notFound }
        let segments = path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst()
        var allowed: [String] = []
        var hit: (Handler, [String: String])?
        for route in routes where route.pattern.count == segments.count {
            var parameters: [String: String] = [:]
            var ok = true
            for (pattern, raw) in zip(route.pattern, segments) {
                switch pattern {
                case .literal(let l):
                    if !l.utf8.elementsEqual(raw) { ok = false }
                case .parameter(let name):
                    // An undecodable segment can never be a valid name: keep it raw, it fails the name rule.
                    let text = String(decoding: raw, as: UTF8.self)
                    if raw.isEmpty { ok = false } else { parameters[name] = PercentDecoding.decode(text) ?? text }
                }
                if !ok { break }
            }
            guard ok else { continue }
            if route.method == method {
                if hit == nil { hit = (route.handler, parameters) }
            } else if !allowed.contains(route.method) {
                allowed.append(route.method)
            }
        }
        if let hit { return .found(hit.0, parameters: hit.1) }
        return allowed.isEmpty ? .notFound : .methodNotAllowed(allowed: allowed)
    }
}
