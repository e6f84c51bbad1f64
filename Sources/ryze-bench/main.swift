// In-process micro-benchmarks of the pieces under the request path, and of log replay.
// bench/run.sh builds this in release and prints its figures next to the wrk runs.
import Foundation
import RyzeCore
import RyzePostgres

func nowNanos() -> UInt64 { MonotonicClock.nanoseconds() }

/// Runs `body` `n` times and returns nanoseconds per call.
@inline(never)
func measure(_ n: Int, _ body: () -> Void) -> Double {
    for _ in 0..<min(n / 10, 10_000) { body() }
    let start = nowNanos()
    for _ in 0..<n { body() }
    return Double(nowNanos() - start) / Double(n)
}

func peakRSSMiB() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

func tempDir() -> String {
    let path = NSTemporaryDirectory() + "ryze-bench-" + UUID().uuidString
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A clock that moves 10 µs per reading (one benchmark thread only).
final class BenchClock: @unchecked Sendable {
    private var t: UInt64 = 1_800_000_000_000_000
    func next() -> UInt64 { t &+= 10; return t }
}

func limiter() throws {
    let dir = tempDir()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let table = try SharedRateTable(path: dir + "/rl", capacity: 65536)
    // 6M/min: one request per 10 µs, and the clock below moves 10 µs per call, so every call is
    // an admitted request that swaps its slot: the costly path.
    let rule = GCRA(limit: 6_000_000)
    let key = table.key(digest: TokenDigest(of: "bench"), bucket: 1)
    var t: UInt64 = 1_800_000_000_000_000
    let gcra = measure(10_000_000) { t &+= 10; _ = rule.decide(tat: t, now: t) }
    let one = measure(5_000_000) { t &+= 10; _ = table.consume(key: key, rule: rule, now: t) }
    let keys = (0..<10_000).map { table.key(digest: TokenDigest(of: "k\($0)"), bucket: 1) }
    var i = 0
    let many = measure(5_000_000) { i = (i + 1) % keys.count; t &+= 10; _ = table.consume(key: keys[i], rule: rule, now: t) }
    let digest = measure(1_000_000) { _ = TokenDigest(of: "Dg6iVjF704rGBDVIr8TGRZCAdWDkApWZEtWsO0AZNm0") }
    // The pipeline's call: RateLimiter over the table as its RateLimitStore, one key, the same
    // clock steps; the difference to "one key" is what the store abstraction costs.
    let ticks = BenchClock()
    let rateLimiter = RateLimiter(table: table, limits: .init(perToken: 6_000_000), clock: WallClock { ticks.next() })
    let bucket = RateLimiter.Bucket.token(TokenDigest(of: "bench-limiter"))
    let through = measure(5_000_000) { _ = try? rateLimiter.consume(bucket) }
    print(String(format: "limiter: GCRA decision %.1f ns; shared-table consume, one key %.1f ns, 10k keys %.1f ns, through RateLimiter %.1f ns; token SHA-256 %.1f ns",
                 gcra, one, many, through, digest))
}

/// The GET path's application, with one account and one configured instance.
/// The store is the data directory's log, or with `postgres` a `PostgresStore` on that (empty)
/// database, following it as a worker does.
func benchApplication(_ dir: String, postgres: String? = nil) throws -> (Application, HTTPRequest) {
    let store: any StateStore = try postgres.map { try PostgresStore(url: $0, options: .init(follow: true)) } ?? LogStore(directory: dir)
    let token = "bench-account-token-0123456789"
    try store.write { _ in (LogRecord.accountCreated(name: "bench", token: TokenDigest(of: token), instanceQuota: 0), ()) }
    try store.write { _ in (LogRecord.instanceCreated(account: "bench", name: "shop", token: TokenDigest(of: "i-" + token),
                                                      websocket: WebSocketConfig(enabled: true, events: [.messageExchange, .callUpdate])), ()) }
    let limits = RateLimiter.Limits(perToken: 6_000_000, createPerToken: 6_000_000, perAddress: 6_000_000)
    let app = Application(store: store, limiter: RateLimiter(table: try SharedRateTable(path: dir + "/rl", capacity: 65536), limits: limits),
                          configuration: .init(), secrets: nil)
    let req = HTTPRequest(fastCGIParameters: ["REQUEST_METHOD": "GET", "REQUEST_URI": "/api/events/getWebsocket/shop",
                                              "REMOTE_ADDR": "127.0.0.1", "HTTP_TOKEN": token])
    precondition(app.respond(to: req).status.code == 200)
    return (app, req)
}

func request() throws {
    let dir = tempDir()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let (app, req) = try benchApplication(dir)
    let get = measure(1_000_000) { _ = app.respond(to: req) }
    print(String(format: "request: GET getWebsocket through routing, auth, rate limit, store and JSON: %.0f ns (in process, no FastCGI)", get))
    // The same with the state in PostgreSQL (--store): the request path reads the process's
    // copy, so the difference is refresh()'s freshness check against the log's change counter.
    if let url = ProcessInfo.processInfo.environment["RYZE_BENCH_POSTGRES_URL"] {
        try FileManager.default.createDirectory(atPath: dir + "/pg", withIntermediateDirectories: true)
        let (pgApp, pgReq) = try benchApplication(dir + "/pg", postgres: url)
        let pgGet = measure(1_000_000) { _ = pgApp.respond(to: pgReq) }
        print(String(format: "request, --store postgresql: the same GET: %.0f ns (log store, same run: %.0f ns)", pgGet, get))
    }
}

/// Writes a log of `instances` instances with `updates` configuration saves each, in a fresh
/// directory, and prints the directory.
func makeLog(instances: Int, updates: Int) throws {
    let dir = tempDir()
    var bytes = LogFormat.header()
    bytes += LogFormat.frame(.accountCreated(name: "bench", token: TokenDigest(of: "bench"), instanceQuota: 0))
    let fd = open(dir + "/" + LogStore.logName, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    func flush() {
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        bytes.removeAll(keepingCapacity: true)
    }
    for i in 0..<instances {
        let name = "instance-\(i)"
        bytes += LogFormat.frame(.instanceCreated(account: "bench", name: name, token: TokenDigest(of: name), websocket: nil))
        for u in 0..<(updates - 1) {
            bytes += LogFormat.frame(.websocketSaved(account: "bench", name: name,
                                                     websocket: WebSocketConfig(enabled: u % 2 == 0, events: [.callUpdate, .groupFlow])))
        }
        if bytes.count > 1 << 20 { flush() }
    }
    flush()
    close(fd)
    print(dir)
}

func replay(dir: String) throws {
    let start = nowNanos()
    let store = try LogStore(directory: dir)
    let seconds = Double(nowNanos() - start) / 1e9
    let s = store.stats
    print(String(format: "replay: %d records (%.1f MB) in %.2f s = %.0f records/s; peak RSS %.1f MiB; %d instances",
                 s.records, Double(s.bytes) / 1e6, seconds, Double(s.records) / seconds, peakRSSMiB(), s.instances))
}

let args = CommandLine.arguments.dropFirst()
do {
    switch args.first {
    case "limiter": try limiter()
    case "request": try request()
    case "request-loop":
        // For callgrind: the difference between two counts divides out the set-up.
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (app, req) = try benchApplication(dir)
        for _ in 0..<(Int(args.dropFirst().first ?? "") ?? 1000) { _ = app.respond(to: req) }
    case "make-log": try makeLog(instances: Int(args.dropFirst().first ?? "") ?? 100_000, updates: Int(args.dropFirst(2).first ?? "") ?? 10)
    case "replay": try replay(dir: String(args.dropFirst().first!))
    default:
        FileHandle.standardError.write(Data("usage: ryze-bench limiter | request | request-loop N | make-log [INSTANCES] [UPDATES] | replay DIR\n".utf8))
        exit(2)
    }
} catch {
    FileHandle.standardError.write(Data("ryze-bench: \(error)\n".utf8))
    exit(1)
}
