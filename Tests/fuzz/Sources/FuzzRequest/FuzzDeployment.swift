import Logging
@testable import RyzeCore
#if canImport(Glibc)
import Glibc
#endif

/// The whole application in process, as fuzz-request drives it: a fresh data directory for every
/// input, so that an input that fails fails again when replayed alone (libFuzzer saves inputs,
/// not histories).
///
/// Made once per process: the deployment key, the rate-limit table (limits far above anything a
/// run reaches, so the limiter counts but never refuses) and `template`, the bytes of an
/// `events.log` holding the state every input starts from:
///
/// - account `acme` (token `$A`, quota 5) with instances `shop` (token `$I`; WebSocket enabled,
///   mediaBase64 false; webhooks `default` and `crm` enabled) and `desk` (token `$J`);
/// - account `other` (token `$B`, quota 2) with an instance `desk` too, so that publishing to a
///   bare `desk` is ambiguous and `acme.desk` is not;
/// - publisher `producer` (token `$P`).
///
/// For each input, `run` writes `template` into an empty directory, opens a `LogStore` over it
/// (a replay, as a starting worker does) and a `QueueStore` beside it (the real delivery queue, as
/// `serve` opens it), answers the requests, checks what was queued, and removes the directory.
final class FuzzDeployment: @unchecked Sendable {
    static let tokens: [UInt8: [UInt8]] = [
        UInt8(ascii: "A"): Array("fuzz-account-token-acme-0001".utf8),
        UInt8(ascii: "B"): Array("fuzz-account-token-other-0002".utf8),
        UInt8(ascii: "I"): Array("fuzz-instance-token-shop-0003".utf8),
        UInt8(ascii: "J"): Array("fuzz-instance-token-desk-0004".utf8),
        UInt8(ascii: "P"): Array("fuzz-publisher-token-0005".utf8),
    ]
    static func token(_ c: Character) -> String { String(decoding: tokens[c.asciiValue!]!, as: UTF8.self) }

    let base: String
    let runDirectory: String
    let secrets: SecretBox
    let limiter: RateLimiter
    let statistics = WorkerStatistics(threads: 1)
    let configuration = Application.Configuration(corsOrigins: ["https://app.example"], statusPath: "/status",
                                                  wsOrigins: ["https://app.example"], baseURL: "https://api.example")
    let stream = CheckingStream()
    let quiet = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
    private(set) var template: [UInt8] = []

    init() {
        // tmpfs when there is one: every write of the store is an fdatasync.
        var dir = Array((access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp").utf8CString.dropLast())
        dir += Array("/ryze-fuzz-XXXXXX".utf8CString)
        guard let made = dir.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else { fatalError("mkdtemp failed") }
        base = String(cString: made)
        runDirectory = base + "/run"
        do {
            secrets = SecretBox(key: try DeploymentKey.loadOrCreate(path: base + "/secret.key", create: true))
            let table = try SharedRateTable(path: base + "/ratelimit.table", capacity: 4096)
            let most = 6_000_000
            limiter = RateLimiter(table: table, limits: .init(perToken: most, createPerToken: most, perAddress: most, publishPerToken: most))
        } catch {
            fatalError("fuzz deployment: \(error)")
        }
        template = makeTemplate()
    }

    private func makeTemplate() -> [UInt8] {
        let dir = base + "/template"
        do {
            let store = try LogStore(directory: dir, logger: quiet)
            try Accounts.create(in: store, name: "acme", token: FuzzDeployment.token("A"), instanceQuota: 5)
            try Accounts.create(in: store, name: "other", token: FuzzDeployment.token("B"), instanceQuota: 2)
            try Publishers.create(in: store, name: "producer", token: FuzzDeployment.token("P"))
            let app = application(store, queue: nil)
            let a = FuzzDeployment.token("A"), b = FuzzDeployment.token("B")
            let setup: [(String, String, String, String)] = [
                ("POST", "/api/instance/new", a, #"{"name":"shop","token":"\#(FuzzDeployment.token("I"))","websocketEnabled":true,"webhookEnabled":true,"webhookURL":"https://hooks.example/shop"}"#),
                ("POST", "/api/events/webhook/shop", a, #"{"label":"crm","enabled":true,"url":"https://crm.example/in","authorization":"Bearer x","events":["message.exchange"]}"#),
                ("POST", "/api/instance/new", a, #"{"name":"desk","token":"\#(FuzzDeployment.token("J"))"}"#),
                ("POST", "/api/instance/new", b, #"{"name":"desk"}"#),
            ]
            for (method, uri, token, body) in setup {
                let r = app.respond(to: HTTPRequest(fastCGIParameters: ["REQUEST_METHOD": method, "REQUEST_URI": uri, "HTTP_TOKEN": token,
                                                                        "CONTENT_LENGTH": String(body.utf8.count), "REMOTE_ADDR": "127.0.0.1"],
                                                    body: Array(body.utf8)))
                guard r.status.code < 300 else { fatalError("fuzz deployment: \(method) \(uri) answered \(r.status.code)") }
            }
            let bytes = try readFile(dir + "/" + LogStore.logName)
            removeTree(dir)
            return bytes
        } catch {
            fatalError("fuzz deployment: \(error)")
        }
    }

    func application(_ store: LogStore, queue: QueueStore?) -> Application {
        Application(store: store, limiter: limiter, configuration: configuration, secrets: secrets,
                    queue: queue, stream: stream, statistics: statistics, logger: quiet)
    }

    /// A fresh store holding `template` and an empty delivery queue, and the application over
    /// them, for the length of `body`; then every queued event must be a valid envelope for as
    /// many deliveries as it has labels.
    func run(_ body: (Application) -> Void) {
        guard mkdir(runDirectory, 0o700) == 0 else { fatalError("mkdir \(runDirectory): \(String(cString: strerror(errno)))") }
        writeFile(runDirectory + "/" + LogStore.logName, template)
        do {
            let store = try LogStore(directory: runDirectory, logger: quiet)
            let queue = try QueueStore(directory: runDirectory, logger: quiet)
            body(application(store, queue: queue))
            queue.read { q in
                for d in q.pending.values {
                    Oracle.requireEnvelope(d.event.envelope, instance: d.event.instance, "queued envelope")
                }
                Oracle.require(q.dead.isEmpty, "a dead letter without a deliverer")
            }
        } catch {
            fatalError("fuzz deployment: opening the stores: \(error)")
        }
        removeTree(runDirectory)
    }

    /// Removes `dir` and the files in it (the store makes no subdirectories).
    func removeTree(_ dir: String) {
        if let d = opendir(dir) {
            while let entry = readdir(d) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { unlink(dir + "/" + name) }
            }
            closedir(d)
        }
        guard rmdir(dir) == 0 else { fatalError("rmdir \(dir): \(String(cString: strerror(errno)))") }
    }

    /// Called at exit (libFuzzer exits with exit()): leaves nothing in /dev/shm.
    func removeEverything() {
        unlink(base + "/secret.key")
        unlink(base + "/ratelimit.table")
        rmdir(base)
    }

    private func readFile(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { fatalError("open \(path)") }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            guard n > 0 else { break }
            out += chunk[0..<n]
        }
        return out
    }

    private func writeFile(_ path: String, _ bytes: [UInt8]) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0, bytes.withUnsafeBytes({ write(fd, $0.baseAddress!, $0.count) }) == bytes.count else { fatalError("write \(path)") }
        close(fd)
    }
}
