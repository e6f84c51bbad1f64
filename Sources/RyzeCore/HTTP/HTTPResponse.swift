/// A complete response: the adapter writes it out in one piece.
public struct HTTPResponse: Sendable {
    public var status: HTTPStatus
    /// nil: no Content-Type header (a 204 has no body to describe).
    public var contentType: String?
    /// X-RateLimit-* and Retry-After, kept as numbers: every API answer carries them, and the
    /// adapter writes the digits straight into its output instead of formatting three strings.
    public var rateLimit: RateLimitHeaders?
    /// Any other header (CORS, Allow). Usually empty, and an empty array allocates nothing.
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: HTTPStatus, contentType: String? = nil, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.contentType = contentType
        self.headers = headers
        self.body = body
    }

    /// A JSON response; every response of the API is one (204 aside, which has no body).
    public static func json(_ status: HTTPStatus, _ value: JSONValue) -> HTTPResponse {
        HTTPResponse(status: status, contentType: jsonType, body: value.serialized())
    }

    /// A JSON response from bytes a handler wrote itself.
    public static func json(_ status: HTTPStatus, body: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: status, contentType: jsonType, body: body)
    }

    @usableFromInline static let jsonType = "application/json"

    /// The contract's error envelope: `{"success": false, "error": {"message": ...}}` and nothing else.
    public static func error(_ status: HTTPStatus, _ message: String) -> HTTPResponse {
        json(status, .object([("success", .bool(false)), ("error", .object([("message", .string(message))]))]))
    }

    /// Every header but Content-Length, in the order the adapter writes them: read back from
    /// `head`, so that it cannot disagree with what goes out.
    public var allHeaders: [(String, String)] {
        String(decoding: head, as: UTF8.self)
            .split(separator: "\r\n")   // one Character: CR LF is a single grapheme
            .dropFirst()                  // Status
            .compactMap { line in
                guard let colon = line.firstIndex(of: ":") else { return nil }
                let name = String(line[..<colon])
                let value = String(line[line.index(colon, offsetBy: 2)...])
                return name == "Content-Length" ? nil : (name, value)
            }
    }

    public func header(_ name: String) -> String? {
        let n = name.lowercased()
        return allHeaders.first(where: { $0.0.lowercased() == n })?.1
    }
}

/// SPEC §3's headers on every answer; `retryAfter` only on a 429, and on the 503 of a rate-limit store that cannot decide.
public struct RateLimitHeaders: Sendable, Equatable {
    public var limit: Int
    public var remaining: Int
    public var reset: Int
    public var retryAfter: Int?

    public init(limit: Int, remaining: Int, reset: Int, retryAfter: Int? = nil) {
        self.limit = limit
        self.remaining = remaining
        self.reset = reset
        self.retryAfter = retryAfter
    }
}

public struct HTTPStatus: Equatable, Sendable, CustomStringConvertible {
    public let code: Int
    public let reason: String

    public init(_ code: Int, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "\(code) \(reason)" }

    public static let ok = HTTPStatus(200, "OK")
    public static let created = HTTPStatus(201, "Created")
    public static let accepted = HTTPStatus(202, "Accepted")
    public static let noContent = HTTPStatus(204, "No Content")
    public static let badRequest = HTTPStatus(400, "Bad Request")
    public static let unauthorized = HTTPStatus(401, "Unauthorized")
    public static let forbidden = HTTPStatus(403, "Forbidden")
    public static let notFound = HTTPStatus(404, "Not Found")
    public static let methodNotAllowed = HTTPStatus(405, "Method Not Allowed")
    public static let conflict = HTTPStatus(409, "Conflict")
    public static let payloadTooLarge = HTTPStatus(413, "Payload Too Large")
    public static let tooManyRequests = HTTPStatus(429, "Too Many Requests")
    public static let internalServerError = HTTPStatus(500, "Internal Server Error")
    public static let serviceUnavailable = HTTPStatus(503, "Service Unavailable")
}
