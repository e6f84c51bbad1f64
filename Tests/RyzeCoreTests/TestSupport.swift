import Foundation
@testable import RyzeCore

/// A fresh data directory under the system temp dir, removed when the test's value goes away.
final class TempDirectory {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "ryze-unit-" + UUID().uuidString
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A clock the test moves by hand, in microseconds.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var ms: UInt64

    init(_ start: UInt64 = 1_800_000_000_000_000) { ms = start }

    var now: UInt64 { lock.withLock { ms } }
    func advance(_ delta: UInt64) { lock.withLock { ms += delta } }
    var wallClock: WallClock { WallClock { [self] in now } }
}

extension HTTPResponse {
    var json: JSONValue? { try? JSONParser.parse(body) }
    var message: String? {
        if case .string(let s)? = json?["error"]?["message"] { return s }
        if case .string(let s)? = json?["message"] { return s }
        return nil
    }
}

/// An Application over a temporary store with one account, for handler-level tests.
struct TestApp {
    let dir = TempDirectory()
    let store: LogStore
    let app: Application
    let clock = ManualClock()
    let accountToken = "account-token-0123456789"

    init(limits: RateLimiter.Limits = .init(perToken: 10_000, createPerToken: 10_000, perAddress: 10_000), cors: Set<String> = [],
         queue: (any EventQueue)? = nil, stream: (any EventStream)? = nil, baseURL: String = "") throws {
        store = try LogStore(directory: dir.path)
        let table = try SharedRateTable(path: dir.path + "/ratelimit.table", capacity: 1024)
        let key = try DeploymentKey.loadOrCreate(path: dir.path + "/secret.key", create: true)
        app = Application(store: store, limiter: RateLimiter(table: table, limits: limits, clock: clock.wallClock),
                          configuration: .init(corsOrigins: cors, baseURL: baseURL), secrets: SecretBox(key: key), queue: queue, stream: stream)
        let digest = TokenDigest(of: accountToken)
        try store.write { _ in (LogRecord.accountCreated(name: "acme", token: digest, instanceQuota: 3), ()) }
    }

    func call(_ method: String, _ uri: String, token: String? = nil, body: String? = nil, headers: [(String, String)] = []) -> HTTPResponse {
        var h = HTTPHeaders(headers)
        if let token { h["token"] = token }
        return app.respond(to: fastCGIRequest(method, uri, headers: h, body: body))
    }

    /// Creates an instance through the API and returns its token.
    func createInstance(_ name: String, extra: String = "") throws -> String {
        let r = call("POST", "/api/instance/new", token: accountToken, body: #"{"name":"\#(name)"\#(extra)}"#)
        guard r.status == .created, case .string(let t)? = r.json?["instance"]?["token"] else {
            throw TestFailure("create \(name) failed: \(r.status) \(String(decoding: r.body, as: UTF8.self))")
        }
        return t
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A request built as production builds it: the FastCGI parameters nginx would send for this
/// method, URI (with its query), headers and body, through the adapter's scan and the core's
/// builder. Headers that are not declared are sent as nginx would, and dropped by the builder.
func fastCGIRequest(_ method: String, _ uri: String, headers: HTTPHeaders = HTTPHeaders(), body: String? = nil,
                    remoteAddress: String = "127.0.0.1") -> HTTPRequest {
    var parameters = headers.fastCGIParameters
    parameters["REQUEST_METHOD"] = method
    parameters["REQUEST_URI"] = uri
    parameters["REMOTE_ADDR"] = remoteAddress
    if let body { parameters["CONTENT_LENGTH"] = String(body.utf8.count) }
    return HTTPRequest(fastCGIParameters: parameters, body: Array((body ?? "").utf8))
}
