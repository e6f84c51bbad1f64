/// The request headers the API reads. Each is a declared FastCGI parameter (nginx sends header
/// `Token:` as `HTTP_TOKEN`), so a handler can read these and nothing else: reading a header
/// that is not declared here does not compile, where it used to pass its unit tests and read nil
/// behind nginx. Declare it here and in `RequestParameter` (and the deployed parameter file).
public enum RequestHeader: CaseIterable, Sendable {
    case token
    case authorization
    case origin

    /// The parameter nginx carries it in.
    public var parameter: RequestParameter {
        switch self {
        case .token: .httpToken
        case .authorization: .httpAuthorization
        case .origin: .httpOrigin
        }
    }
}

/// The declared headers of one request, copied out of its parameters.
public struct RequestHeaders: Sendable {
    private let token: String?
    private let authorization: String?
    private let origin: String?

    init(_ p: RequestParameters) {
        func value(_ h: RequestHeader) -> String? { p[h.parameter].map { String(cString: $0) } }
        token = value(.token)
        authorization = value(.authorization)
        origin = value(.origin)
    }

    /// The value as sent, nil when the request did not carry the header.
    public subscript(_ header: RequestHeader) -> String? {
        switch header {
        case .token: token
        case .authorization: authorization
        case .origin: origin
        }
    }
}
