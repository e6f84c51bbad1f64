#if canImport(Glibc)
import Glibc
#endif

/// The values of the declared parameters of one request, found in one pass over a CGI-style
/// environment: a NULL-terminated array of `NAME=value` C strings, which is what libfcgi hands
/// over as `envp`. (FCGX_GetParam would scan the whole array once per name.)
///
/// Values are pointers into the environment's own strings, not copies: they are valid exactly as
/// long as those strings, which for libfcgi means until the request's FCGX_Finish_r (or the next
/// FCGX_Accept_r). Build the `HTTPRequest` before then; it copies what it keeps. Only what a
/// request uses ever becomes a String. When a name comes twice, the last one wins.
///
/// A struct over the C environment rather than a protocol the adapter would conform to: tests
/// lay their strings out as libfcgi does (`withEnvironment`) and so run this scan too, not only
/// the builder after it, and the request path has no generic or existential to specialize.
public struct RequestParameters {
    private var requestMethod, requestURI, documentURI, queryString, contentLengthText,
                remoteAddress, httpToken, httpAuthorization, httpOrigin: UnsafePointer<CChar>?

    /// No parameters at all: a request built from it is `GET /` from nowhere.
    public init() {}

    public init(environment: UnsafePointer<UnsafeMutablePointer<CChar>?>?) {
        guard var entry = environment else { return }
        while let cString = entry.pointee {
            entry += 1
            guard let eq = strchr(cString, Int32(UInt8(ascii: "="))) else { continue }
            let name = UnsafeRawPointer(cString).assumingMemoryBound(to: UInt8.self)
            if let parameter = RequestParameter(name: name, count: UnsafePointer(eq) - UnsafePointer(cString)) {
                self[parameter] = UnsafePointer(eq) + 1
            }
        }
    }

    /// The value as sent (NUL-terminated), nil when the parameter was not sent.
    public internal(set) subscript(_ parameter: RequestParameter) -> UnsafePointer<CChar>? {
        get {
            switch parameter {
            case .requestMethod: requestMethod
            case .requestURI: requestURI
            case .documentURI: documentURI
            case .queryString: queryString
            case .contentLength: contentLengthText
            case .remoteAddress: remoteAddress
            case .httpToken: httpToken
            case .httpAuthorization: httpAuthorization
            case .httpOrigin: httpOrigin
            }
        }
        set {
            switch parameter {
            case .requestMethod: requestMethod = newValue
            case .requestURI: requestURI = newValue
            case .documentURI: documentURI = newValue
            case .queryString: queryString = newValue
            case .contentLength: contentLengthText = newValue
            case .remoteAddress: remoteAddress = newValue
            case .httpToken: httpToken = newValue
            case .httpAuthorization: httpAuthorization = newValue
            case .httpOrigin: httpOrigin = newValue
            }
        }
    }

    /// CONTENT_LENGTH as nginx sends it: digits, or nothing (0). Anything else counts as no body;
    /// a number too large for Int as `Int.max`, so that the adapter refuses it as too large
    /// instead of wrapping around.
    public var contentLength: Int {
        guard var p = contentLengthText else { return 0 }
        var n = 0
        while p.pointee != 0 {
            let d = Int(p.pointee) - 48
            guard d >= 0 && d <= 9 else { return 0 }
            guard n <= (Int.max - d) / 10 else { return .max }
            n = n * 10 + d
            p += 1
        }
        return n
    }
}

extension RequestParameters {
    /// Runs `body` with the parameters of `environment` laid out as libfcgi lays them out (each
    /// pair one `NAME=value` C string, the array NULL-terminated) and found by the same scan as
    /// the adapter's: how tests and tools build requests. The pointers die when `body` returns.
    public static func withEnvironment<R>(_ environment: [String: String], _ body: (RequestParameters) throws -> R) rethrows -> R {
        let strings: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0.key + "=" + $0.value) } + [nil]
        defer { for s in strings { free(s) } }
        return try strings.withUnsafeBufferPointer { try body(RequestParameters(environment: $0.baseAddress)) }
    }
}
