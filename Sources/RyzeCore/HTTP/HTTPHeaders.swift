/// Request headers as a client sends them: the input side, for tests and tools that build a
/// request the way nginx passes it on. `fastCGIParameters` names each one as nginx does when it
/// forwards request headers (`HTTP_` + the name upper-cased, `-` as `_`), and the request builder
/// then keeps only the declared ones, as in production (where nginx is told to forward no others).
///
/// No request exposes this type: handlers read `RequestHeaders`, which holds the declared headers
/// only. Names are stored lower-case; look them up lower-case (the getter does not fold case).
public struct HTTPHeaders: Sendable {
    private var pairs: [(String, String)] = []

    public init(_ pairs: [(String, String)] = []) {
        for (k, v) in pairs { self[k] = v }
    }

    public init(token: String?, authorization: String?, origin: String?) {
        self["token"] = token
        self["authorization"] = authorization
        self["origin"] = origin
    }

    public subscript(name: String) -> String? {
        get { pairs.first(where: { $0.0 == name })?.1 }
        set {
            let n = name.lowercased()
            pairs.removeAll(where: { $0.0 == n })
            if let newValue { pairs.append((n, newValue)) }
        }
    }

    /// The FastCGI parameters nginx would send for these headers.
    public var fastCGIParameters: [String: String] {
        var parameters: [String: String] = [:]
        for (name, value) in pairs {
            parameters["HTTP_" + String(name.uppercased().map { $0 == "-" ? "_" : $0 })] = value
        }
        return parameters
    }
}
