// swift-tools-version:6.0
// libFuzzer targets for ryze-events: a package of its own, so that the normal build never sees
// the sanitizer flags. Built and run by deploy/fuzz.sh (Tests/fuzz/README.md), which builds with
// `-Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing` into .build-fuzz.
//
// Each executable is one fuzz target: LLVMFuzzerTestOneInput, and an `@main` that hands it to
// libFuzzer's driver (CLibFuzzer says why not libFuzzer's own main).
import PackageDescription

let fuzzTarget: [Target.Dependency] = [
    .product(name: "RyzeCore", package: "ryze-events"),
    "CLibFuzzer",
]

let package = Package(
    name: "ryze-fuzz",
    dependencies: [
        .package(name: "ryze-events", path: "../.."),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        .target(name: "CLibFuzzer"),
        .executableTarget(name: "fuzz-json", dependencies: fuzzTarget, path: "Sources/FuzzJSON"),
        .executableTarget(name: "fuzz-request", dependencies: fuzzTarget + [.product(name: "Logging", package: "swift-log")], path: "Sources/FuzzRequest"),
        // The checks both log targets make, generic over the record type.
        .target(name: "LogFuzzing", dependencies: [.product(name: "RyzeCore", package: "ryze-events")]),
        .executableTarget(name: "fuzz-logrecord", dependencies: fuzzTarget + ["LogFuzzing"], path: "Sources/FuzzLogRecord"),
        .executableTarget(name: "fuzz-queuerecord", dependencies: fuzzTarget + ["LogFuzzing"], path: "Sources/FuzzQueueRecord"),
        .executableTarget(name: "fuzz-webhookurl", dependencies: fuzzTarget, path: "Sources/FuzzWebhookURL"),
        .executableTarget(name: "fuzz-rawjson", dependencies: fuzzTarget, path: "Sources/FuzzRawJSON"),
    ],
    swiftLanguageModes: [.v6]
)
