import ArgumentParser
import Logging
import RyzeCore
import RyzeFastCGI
import RyzeRedis
import RyzeStream

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a FastCGI worker.",
        discussion: """
            Without --listen it serves the FastCGI socket handed over on fd 0 (spawn-fcgi, \
            multiwatch). SIGTERM, SIGINT, SIGQUIT, SIGUSR1 or SIGUSR2 stop it gracefully: it stops \
            accepting, finishes the requests in flight and exits 0.
            """
    )

    @OptionGroup var data: DataDirectory

    @Option(help: ArgumentHelp("Open our own socket: unix:/path.sock or HOST:PORT.", valueName: "address"))
    var listen: String?

    @Option(help: "Request threads in this process.")
    var threads: Int = 8

    @Option(name: .customLong("rate-limit"), help: "Requests per minute per token (every endpoint but instance creation).")
    var rateLimit: Int = 100

    @Option(name: .customLong("create-rate-limit"), help: "POST /api/instance/new per minute per account token.")
    var createRateLimit: Int = 20

    @Option(name: .customLong("publish-rate-limit"), help: "POST /api/events/publish/:instance per minute per publisher token.")
    var publishRateLimit: Int = 60_000

    @Option(name: .customLong("max-publish-body"), help: ArgumentHelp("Largest body of POST /api/events/publish/:instance; larger ones get 413.", valueName: "bytes"))
    var maxPublishBody: Int = 1 << 20

    @Option(name: .customLong("base-url"), help: ArgumentHelp("Put in every event's instanceData.baseUrl.", valueName: "url"))
    var baseURL: String = ""

    @Option(name: .customLong("anon-rate-limit"), help: "Requests per minute per client network (--anon-ipv4-prefix, --anon-ipv6-prefix) without a valid token.")
    var anonRateLimit: Int = 30

    @Option(name: .customLong("anon-ipv4-prefix"), help: ArgumentHelp("Requests without a valid token are limited per IPv4 network of this prefix length (1 to 32).", valueName: "bits"))
    var anonIPv4Prefix: Int = 32

    @Option(name: .customLong("anon-ipv6-prefix"), help: ArgumentHelp("Requests without a valid token are limited per IPv6 network of this prefix length (1 to 128).", valueName: "bits"))
    var anonIPv6Prefix: Int = 64

    @Option(name: .customLong("rate-table-slots"), help: "Slots of the shared rate-limit table, used when the deployment creates it.")
    var rateTableSlots: Int = 65536

    @Option(name: .customLong("rate-limit-store"), help: ArgumentHelp("Keep the rate-limit buckets on this Redis server, shared by every host of the deployment, instead of in the data directory's table. While it is unreachable, requests get 503.", valueName: "redis://host:port[/db]"))
    var rateLimitStore: String?

    @Option(name: .customLong("cors-origin"), help: ArgumentHelp("Allow this browser origin (repeatable).", valueName: "origin"))
    var corsOrigins: [String] = []

    @Option(name: .customLong("ws-origin"), help: ArgumentHelp("Allow this browser origin to open /ws/:instance (repeatable); a request without Origin is always allowed.", valueName: "origin"))
    var wsOrigins: [String] = []

    @Option(name: .customLong("fanout-socket"), help: ArgumentHelp("nginx nchan's publisher unix socket: events go out to /ws subscribers through it, and deleting an instance closes its connections. Without it nothing is streamed.", valueName: "path"))
    var fanoutSocket: String?

    @Option(name: .customLong("compact-factor"), help: "Compact the log automatically when it holds more than this many times the records of the current state (and at least 1000); 0: never.")
    var compactFactor: Int = 4

    @Option(name: .customLong("max-requests"), help: "Exit cleanly after this many requests, for the supervisor to start a fresh worker (0: never).")
    var maxRequests: Int = 0

    @Option(name: .customLong("read-timeout"), help: ArgumentHelp("Drop a FastCGI connection whose request does not arrive within this many seconds (0: never).", valueName: "seconds"))
    var readTimeout: Double = 30

    @Option(name: .customLong("status-path"), help: ArgumentHelp("Serve this worker's status at this path (JSON; ?format=prometheus for Prometheus text). Off by default.", valueName: "path"))
    var statusPath: String?

    @Option(name: .customLong("log-file"), help: ArgumentHelp("Append logs here instead of standard error.", valueName: "path"))
    var logFile: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        guard threads >= 1 && threads <= 1024 else { throw ValidationError("--threads must be between 1 and 1024") }
        guard maxPublishBody >= 1024 && maxPublishBody <= 16 << 20 else { throw ValidationError("--max-publish-body must be between 1024 and 16777216 bytes") }
        for (flag, v) in [("--rate-limit", rateLimit), ("--create-rate-limit", createRateLimit), ("--anon-rate-limit", anonRateLimit),
                          ("--publish-rate-limit", publishRateLimit)] {
            guard v >= 1 && v <= 6_000_000 else { throw ValidationError("\(flag) must be between 1 and 6000000 per minute") }
        }
        guard ClientNetwork.Prefixes.ipv4Range.contains(anonIPv4Prefix) else { throw ValidationError("--anon-ipv4-prefix must be between 1 and 32") }
        guard ClientNetwork.Prefixes.ipv6Range.contains(anonIPv6Prefix) else { throw ValidationError("--anon-ipv6-prefix must be between 1 and 128") }
        guard rateTableSlots >= 64 && rateTableSlots <= 1 << 26 else { throw ValidationError("--rate-table-slots must be between 64 and 67108864") }
        guard compactFactor >= 0 else { throw ValidationError("--compact-factor must be 0 or more") }
        guard maxRequests >= 0 else { throw ValidationError("--max-requests must be 0 or more") }
        guard readTimeout >= 0 && readTimeout <= 86_400 else { throw ValidationError("--read-timeout must be between 0 and 86400 seconds") }
        for origin in wsOrigins where !Serve.isOrigin(origin) {
            throw ValidationError("--ws-origin takes an origin as browsers send it, scheme://host[:port] without a path: \(origin)")
        }
        if let fanoutSocket, !fanoutSocket.hasPrefix("/") || fanoutSocket.utf8.count > 107 {
            throw ValidationError("--fanout-socket takes an absolute path of at most 107 bytes")
        }
        if let rateLimitStore, case .failure(let e) = RedisAddress.parse(rateLimitStore) {
            throw ValidationError("--rate-limit-store takes redis://host:port[/db]: \(rateLimitStore) \(e)")
        }
        if let statusPath, !statusPath.hasPrefix("/") { throw ValidationError("--status-path must start with /") }
        if let listen, !(listen.hasPrefix("unix:/") || listen.contains(":")) {
            throw ValidationError("--listen takes unix:/path.sock or HOST:PORT")
        }
    }

    func run() throws {
        do {
            try LogSetup.bootstrap(file: logFile, level: logLevel)
            let logger = Logger(label: "ryze.serve")
            let store = try data.openStateStore(follow: true, compactFactor: compactFactor > 0 ? compactFactor : nil)
            let rateStore: any RateLimitStore
            if let rateLimitStore, case .success(let address) = RedisAddress.parse(rateLimitStore) {
                rateStore = RedisRateStore(address: address, logger: Logger(label: "ryze.ratelimit"))
            } else {
                rateStore = try SharedRateTable(path: data.path + "/ratelimit.table", capacity: rateTableSlots)
            }
            let limits = RateLimiter.Limits(perToken: rateLimit, createPerToken: createRateLimit, perAddress: anonRateLimit,
                                            publishPerToken: publishRateLimit)
            let statistics = WorkerStatistics(threads: threads)
            let key = try data.loadKey(for: store)
            let app = Application(
                store: store,
                limiter: RateLimiter(store: rateStore, limits: limits, prefixes: .init(ipv4: anonIPv4Prefix, ipv6: anonIPv6Prefix)),
                configuration: .init(corsOrigins: Set(corsOrigins), statusPath: statusPath, wsOrigins: Set(wsOrigins), baseURL: baseURL, maxPublishBodyBytes: maxPublishBody),
                secrets: SecretBox(key: key),
                queue: try data.openEventQueue(),
                stream: fanoutSocket.map { NchanStream(socketPath: $0, logger: Logger(label: "ryze.stream")) },
                statistics: statistics,
                logger: Logger(label: "ryze.api"))
            let server = FastCGIServer(
                configuration: .init(listen: listen, threads: threads, maxBodyBytes: app.configuration.largestBodyBytes, maxRequests: maxRequests > 0 ? maxRequests : nil,
                                     readTimeoutSeconds: readTimeout > 0 ? readTimeout : nil),
                logger: logger,
                statistics: statistics,
                handler: { app.respond(to: $0) })
            try server.run()
        } catch {
            Logger(label: "ryze.serve").critical("cannot serve: \(error)")
            fail("\(error)")
        }
    }

    /// `scheme://host[:port]`, lower-case scheme, nothing after the authority: what a browser
    /// sends in `Origin`, which is compared byte for byte.
    static func isOrigin(_ s: String) -> Bool {
        guard let range = s.range(of: "://") else { return false }
        let scheme = s[..<range.lowerBound], authority = s[range.upperBound...]
        return !scheme.isEmpty && scheme.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || "+-.".contains($0) }
            && !authority.isEmpty && !authority.contains(where: { "/?#@ ".contains($0) })
    }
}
