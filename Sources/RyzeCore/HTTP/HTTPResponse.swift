/// A complete response: the adapter writes it out in one piece.
public struct HTTPResponse: Sendable {
    public var status: HTTPStatus
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: HTTPStatus, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON response; every response of the API is one (204 aside, which has no body).
    public static func json(_ status: HTTPStatus, _ value: JSONValue) -> HTTPResponse {
        HTTPResponse(status: status, headers: jsonHeaders, body: value.serialized())
    }

    /// Room for the rate-limit and CORS headers every response gets, so appending them does not regrow.
    public static var jsonHeaders: [(String, String)] {
        var h: [(String, String)] = []
        h.reserveCapacity(8)
        h.append(("Content-Type", "application/json"))
        return h
    }

    /// The contract's error envelope: `{"success": false, "error": {"message": ...}}` and nothing else.
    public static func error(_ status: HTTPStatus, _ message: String) -> HTTPResponse {
        json(status, .object([("success", .bool(false)), ("error", .object([("message", .string(message))]))]))
    }

    public func header(_ name: String) -> String? {
        let n = name.lowercased()
        return headers.first(where: { $0.0.lowercased() == n })?.1
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
