// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ryze-events",
    products: [
        .executable(name: "ryze-events", targets: ["ryze-events"]),
        // For Tests/fuzz, a package of its own that depends on this one by path.
        .library(name: "RyzeCore", targets: ["RyzeCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.2.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.0.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
    ],
    targets: [
        // libfcgi through pkg-config; only the adapter target sees it.
        .systemLibrary(
            name: "CFastCGI",
            pkgConfig: "fcgi",
            providers: [.apt(["libfcgi-dev"])]
        ),
        // libpq (Debian's libpq-dev) through pkg-config: only RyzePostgres sees it.
        .systemLibrary(
            name: "CPostgres",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        // The PostgreSQL StateStore of SPEC §7 (`--store postgresql://...`).
        .target(
            name: "RyzePostgres",
            dependencies: [
                "CPostgres",
                "RyzeCore",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // libcurl (Debian's libcurl4-openssl-dev) with C shims for its variadic calls.
        .target(
            name: "CCurl",
            linkerSettings: [.linkedLibrary("curl")]
        ),
        // hiredis (Debian's libhiredis-dev 0.14), the blocking client: only RyzeRedis sees it.
        .systemLibrary(
            name: "CHiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        // The multi-host rate-limit store (SPEC §7): RyzeCore's RateLimitStore on a Redis server.
        .target(
            name: "RyzeRedis",
            dependencies: [
                "CHiredis",
                "RyzeCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // A blocking HTTP client over libcurl: webhook deliveries and the hand-off to nginx's fan-out.
        .target(
            name: "RyzeHTTP",
            dependencies: ["CCurl"]
        ),
        // The workers' WebSocket fan-out: RyzeCore's EventStream over nginx nchan's publisher socket.
        .target(
            name: "RyzeStream",
            dependencies: [
                "RyzeCore",
                "RyzeHTTP",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // HTTP model, router, handlers, auth, rate limiter, store: no libfcgi here.
        .target(
            name: "RyzeCore",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            exclude: ["Store/log_format.md", "Queue/queue_format.md"]
        ),
        // The webhook deliverer: follows the delivery queue and the configuration, POSTs with
        // libcurl. RyzeCore knows nothing of HTTP clients; this target joins the two.
        .target(
            name: "RyzeDeliver",
            dependencies: [
                "RyzeCore",
                "RyzeHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Atomics", package: "swift-atomics"),
            ]
        ),
        // The thin FastCGI adapter: libfcgi requests in, RyzeCore responses out.
        .target(
            name: "RyzeFastCGI",
            dependencies: [
                "CFastCGI",
                "RyzeCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Atomics", package: "swift-atomics"),
            ]
        ),
        .executableTarget(
            name: "ryze-events",
            dependencies: [
                "RyzeCore",
                "RyzeFastCGI",
                "RyzeStream",
                "RyzeDeliver",
                "RyzeRedis",
                "RyzePostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Micro-benchmarks for bench/run.sh: limiter cost, in-process request cost, log replay.
        .executableTarget(
            name: "ryze-bench",
            dependencies: ["RyzeCore", "RyzePostgres"]
        ),
        .testTarget(
            name: "RyzeCoreTests",
            dependencies: ["RyzeCore"],
            // Log files kept byte for byte: read by the tests through #filePath, not bundled.
            exclude: ["Golden"]
        ),
        // The libcurl client against a local test server (a thread of the test process).
        .testTarget(
            name: "RyzeHTTPTests",
            dependencies: ["RyzeHTTP"]
        ),
        .testTarget(
            name: "RyzeDeliverTests",
            dependencies: ["RyzeDeliver", "RyzeCore", "RyzeHTTP"]
        ),
        // The adapter driven in-process over a socketpair with hand-built FastCGI records.
        .testTarget(
            name: "RyzeFastCGITests",
            dependencies: ["RyzeFastCGI", "RyzeCore", "CFastCGI"]
        ),
        // RedisRateStore and its Lua script against a throwaway redis-server the tests start.
        .testTarget(
            name: "RyzeRedisTests",
            dependencies: ["RyzeRedis", "RyzeCore"]
        ),
        // PostgresStore against a throwaway PostgreSQL (RYZE_TEST_POSTGRES_URL; skipped without it).
        .testTarget(
            name: "RyzePostgresTests",
            dependencies: ["RyzePostgres", "RyzeCore"]
        ),
        // NchanStream against a one-request HTTP server on a unix socket.
        .testTarget(
            name: "RyzeStreamTests",
            dependencies: ["RyzeStream", "RyzeCore"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
