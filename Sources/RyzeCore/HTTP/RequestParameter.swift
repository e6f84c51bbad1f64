#if canImport(Glibc)
import Glibc
#endif

/// The FastCGI parameters ryze-events reads, declared once. The adapter picks exactly these out
/// of what nginx sends, `HTTPRequest(parameters:)` turns them into a request, tests build their
/// requests through the same two steps, and a unit test holds `deploy/fastcgi_params.ryze-events`
/// to this list. A parameter missing here does not reach a handler, in tests as in production.
public enum RequestParameter: Int, CaseIterable, Sendable {
    case requestMethod
    case requestURI
    case documentURI
    case queryString
    case contentLength
    case remoteAddress
    case httpToken
    case httpAuthorization
    case httpOrigin

    /// The name nginx sends.
    public var name: StaticString {
        switch self {
        case .requestMethod: "REQUEST_METHOD"
        case .requestURI: "REQUEST_URI"
        case .documentURI: "DOCUMENT_URI"
        case .queryString: "QUERY_STRING"
        case .contentLength: "CONTENT_LENGTH"
        case .remoteAddress: "REMOTE_ADDR"
        case .httpToken: "HTTP_TOKEN"
        case .httpAuthorization: "HTTP_AUTHORIZATION"
        case .httpOrigin: "HTTP_ORIGIN"
        }
    }

    /// False for the two only nginx's stock `fastcgi_params` sends. They are read when present,
    /// so that a server block including that file keeps working (QUERY_STRING then wins over the
    /// query in REQUEST_URI, as it reflects nginx rewrites), but the deployed parameter file
    /// leaves them out: REQUEST_URI carries both, and every parameter sent costs on every request.
    public var isInDeployedParameters: Bool {
        switch self {
        case .documentURI, .queryString: false
        default: true
        }
    }

    /// The declared parameter whose name is exactly these bytes, or nil. This runs for every
    /// parameter of every request: one switch on the first byte, then a length check and a
    /// `memcmp` against the declared `name` of each candidate. The switch only narrows the
    /// candidates; a case it leaves out would never be found, which the unit tests catch by
    /// looking every case up by its own name.
    public init?(name start: UnsafePointer<UInt8>, count: Int) {
        func named(_ p: RequestParameter) -> RequestParameter? {
            let n = p.name
            return n.utf8CodeUnitCount == count && memcmp(start, n.utf8Start, count) == 0 ? p : nil
        }
        guard count > 0 else { return nil }
        let found: RequestParameter?
        switch start.pointee {
        case UInt8(ascii: "R"): found = named(.requestMethod) ?? named(.requestURI) ?? named(.remoteAddress)
        case UInt8(ascii: "H"): found = named(.httpToken) ?? named(.httpAuthorization) ?? named(.httpOrigin)
        case UInt8(ascii: "Q"): found = named(.queryString)
        case UInt8(ascii: "C"): found = named(.contentLength)
        case UInt8(ascii: "D"): found = named(.documentURI)
        default: found = nil
        }
        guard let found else { return nil }
        self = found
    }
}
