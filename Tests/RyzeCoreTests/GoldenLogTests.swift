#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import RyzeCore

/// Pins log_format.md: `Golden/events-v1.log` was written by format version 1 and is kept as it
/// is. Every later version must still read it, record by record, and must still write those
/// records to the same bytes. Never regenerate it to make this test pass: a failure here means
/// existing deployments' logs would no longer read. A new record type gets a golden file of its
/// own beside this one.
@Suite struct GoldenLogTests {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/events-v1.log").path

    /// What the golden file holds, in order: one of each record type, with every shape of the
    /// websocket field (absent, disabled, enabled with all types, with some, with media).
    static let records: [LogRecord] = [
        .accountCreated(name: "acme", token: TokenDigest(of: "golden-account-token-1"), instanceQuota: 100),
        .accountCreated(name: "unlimited_co-2", token: TokenDigest(of: "golden-account-token-2"), instanceQuota: 0),
        .instanceCreated(account: "acme", name: "shop", token: TokenDigest(of: "golden-instance-token-1"), websocket: nil),
        .instanceCreated(account: "acme", name: "desk", token: TokenDigest(of: "golden-instance-token-2"),
                         websocket: WebSocketConfig(enabled: true, events: [.messageExchange, .labelUpdate], mediaBase64: true)),
        .websocketSaved(account: "acme", name: "shop", websocket: WebSocketConfig(enabled: true)),
        .websocketSaved(account: "acme", name: "shop", websocket: WebSocketConfig(enabled: false)),
        .websocketSaved(account: "acme", name: "desk",
                        websocket: WebSocketConfig(enabled: true, events: [.messageStatus, .callUpdate, .groupFlow, .instanceState], mediaBase64: false)),
        .instanceDeleted(account: "acme", name: "desk"),
        .accountDisabled(name: "unlimited_co-2"),
    ]

    /// Webhook records (types 6 to 8), added to format version 1 without changing the earlier
    /// types: `Golden/events-v1-webhooks.log`. The sealed boxes are fixed bytes here; the
    /// format stores them as they are.
    static let webhooksPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/events-v1-webhooks.log").path

    static let webhookRecords: [LogRecord] = {
        let id = DeploymentKey.ID(bytes: [1, 2, 3, 4, 5, 6, 7, 8])!
        let box: (UInt8) -> [UInt8] = { seed in (0..<45).map { UInt8(truncatingIfNeeded: Int(seed) &* 31 &+ $0) } }
        let hook = StoredWebhook(config: WebhookConfig(label: .default, enabled: true, url: "https://hooks.example/ryze",
                                                       byEvents: true, events: [.messageExchange, .callUpdate], mediaBase64: true),
                                 sealedAuthorization: box(1), sealedSigningSecret: box(2), keyID: id)
        let off = StoredWebhook(config: WebhookConfig(label: WebhookLabel("ops.v2-x_y")!, enabled: false),
                                sealedAuthorization: [], sealedSigningSecret: box(3), keyID: id)
        return [
            .accountCreated(name: "acme", token: TokenDigest(of: "golden-account-token-1"), instanceQuota: 100),
            .instanceCreated(account: "acme", name: "shop", token: TokenDigest(of: "golden-instance-token-1"), websocket: nil),
            .webhookSaved(account: "acme", name: "shop", webhook: hook),
            .webhookSaved(account: "acme", name: "shop", webhook: off),
            .webhookDeleted(account: "acme", name: "shop", label: .default),
            .batch([
                .instanceCreated(account: "acme", name: "desk", token: TokenDigest(of: "golden-instance-token-2"), websocket: WebSocketConfig(enabled: true)),
                .webhookSaved(account: "acme", name: "desk", webhook: hook),
            ]),
        ]
    }()

    /// Publisher records (types 9 and 10), added to format version 1 for SPEC §6's publisher
    /// tokens without changing the earlier types: `Golden/events-v1-publishers.log`.
    static let publishersPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/events-v1-publishers.log").path

    static let publisherRecords: [LogRecord] = [
        .publisherCreated(name: "billing", token: TokenDigest(of: "golden-publisher-token-1")),
        .publisherCreated(name: "crm_sync-2", token: TokenDigest(of: "golden-publisher-token-2")),
        .publisherDisabled(name: "billing"),
    ]

    /// Webhook records with a label generation (type 12), added to format version 1 without
    /// changing the earlier types: `Golden/events-v1-generations.log`. A label without a
    /// generation is still type 6 (the third record).
    static let generationsPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/events-v1-generations.log").path

    static let generationRecords: [LogRecord] = {
        let id = DeploymentKey.ID(bytes: [1, 2, 3, 4, 5, 6, 7, 8])!
        let box: (UInt8) -> [UInt8] = { seed in (0..<45).map { UInt8(truncatingIfNeeded: Int(seed) &* 31 &+ $0) } }
        let hook = StoredWebhook(config: WebhookConfig(label: .default, enabled: true, url: "https://hooks.example/ryze",
                                                       byEvents: true, events: [.messageExchange], mediaBase64: false),
                                 sealedAuthorization: box(1), sealedSigningSecret: box(2), keyID: id, generation: 0x0102_0304_0506_0708)
        var high = hook
        high.generation = 0xF0E0_D0C0_B0A0_9080
        var none = hook
        none.generation = 0
        return [
            .accountCreated(name: "acme", token: TokenDigest(of: "golden-account-token-1"), instanceQuota: 100),
            .instanceCreated(account: "acme", name: "shop", token: TokenDigest(of: "golden-instance-token-1"), websocket: nil),
            .webhookSaved(account: "acme", name: "shop", webhook: none),
            .webhookSaved(account: "acme", name: "shop", webhook: hook),
            .batch([
                .instanceCreated(account: "acme", name: "desk", token: TokenDigest(of: "golden-instance-token-2"), websocket: nil),
                .webhookSaved(account: "acme", name: "desk", webhook: high),
            ]),
        ]
    }()

    @Test func generationRecordsStillReadAndEncodeToTheSameBytes() throws {
        let seen = try Self.pinned(Self.generationsPath, Self.generationRecords)
        var state = State()
        for r in seen { state.apply(r) }
        #expect(state.instance(account: "acme", name: "shop")?.webhooks[.default]?.generation == 0x0102_0304_0506_0708)
        #expect(state.instance(account: "acme", name: "desk")?.webhooks[.default]?.generation == 0xF0E0_D0C0_B0A0_9080)
    }

    @Test func publisherRecordsStillReadAndEncodeToTheSameBytes() throws {
        _ = try Self.pinned(Self.publishersPath, Self.publisherRecords)
    }

    @Test func webhookRecordsStillReadAndEncodeToTheSameBytes() throws {
        let seen = try Self.pinned(Self.webhooksPath, Self.webhookRecords)
        var state = State()
        for r in seen { state.apply(r) }
        #expect(state.instance(account: "acme", name: "shop")?.webhooks.keys.map(\.name) == ["ops.v2-x_y"])
        #expect(state.instance(account: "acme", name: "desk")?.webhooks[.default]?.config.url == "https://hooks.example/ryze")
    }

    /// The stream-epoch record (type 11), added to format version 1 without changing the earlier
    /// types: `Golden/events-v1-stream.log`.
    static let streamPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/events-v1-stream.log").path

    static let streamRecords: [LogRecord] = [
        .accountCreated(name: "acme", token: TokenDigest(of: "golden-account-token-1"), instanceQuota: 100),
        .instanceCreated(account: "acme", name: "shop", token: TokenDigest(of: "golden-instance-token-1"), websocket: WebSocketConfig(enabled: true)),
        .batch([
            .websocketSaved(account: "acme", name: "shop", websocket: WebSocketConfig(enabled: false)),
            .streamClosed(account: "acme", name: "shop", epoch: 1),
        ]),
        .websocketSaved(account: "acme", name: "shop", websocket: WebSocketConfig(enabled: true)),
        .streamClosed(account: "acme", name: "shop", epoch: 0x0102_0304),
    ]

    @Test func streamRecordsStillReadAndEncodeToTheSameBytes() throws {
        let seen = try Self.pinned(Self.streamPath, Self.streamRecords)
        var state = State()
        for r in seen { state.apply(r) }
        #expect(state.instance(account: "acme", name: "shop")?.streamEpoch == 0x0102_0304)
    }

    @Test func version1LogStillReadsRecordByRecord() throws {
        let fd = open(Self.path, O_RDONLY)
        #expect(fd >= 0, "missing \(Self.path)")
        defer { close(fd) }
        var header = [UInt8](repeating: 0, count: LogFormat.headerSize)
        #expect(header.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, 0) } == LogFormat.headerSize)
        #expect(LogFormat.isValidHeader(header[...]))
        var seen: [LogRecord] = []
        let result = try LogFormat.scan(fd: fd, from: LogFormat.headerSize) { record, _, _ in seen.append(record) }
        #expect(result.stop == .clean)
        #expect(seen.count == Self.records.count)
        for (k, (got, want)) in zip(seen, Self.records).enumerated() {
            #expect(got == want, "record \(k)")
        }
    }

    @Test func version1RecordsStillEncodeToTheSameBytes() throws {
        let golden = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.path)))
        var bytes = LogFormat.header()
        for r in Self.records { bytes += LogFormat.frame(r) }
        #expect(bytes == golden)
    }

    @Test func version1LogReplaysIntoAStore() throws {
        let dir = TempDirectory()
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.path, toPath: dir.path + "/events.log")
        let store = try LogStore(directory: dir.path)
        #expect(store.read { $0.accounts["acme"]?.instances } == ["shop"])
        #expect(store.read { $0.accounts["unlimited_co-2"]?.disabled } == true)
        #expect(store.read { $0.instance(account: "acme", name: "shop")?.websocket } == WebSocketConfig(enabled: false))
        #expect(store.read { $0.principal(for: TokenDigest(of: "golden-instance-token-1")) }
                == .instance(State.InstanceKey(account: "acme", name: "shop")))
    }

    /// Writes a golden file; run once, by hand, when a NEW golden file is added:
    /// `RYZE_WRITE_GOLDEN=webhooks swift test --filter GoldenLogTests` (`webhooks`, `publishers`,
    /// `stream`, `generations`; any other value: the first).
    /// The records of the golden file at `path`, after checking that they are `records`, read
    /// back cleanly, and that `records` still encode to the file's bytes.
    static func pinned(_ path: String, _ records: [LogRecord]) throws -> [LogRecord] {
        let golden = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        var bytes = LogFormat.header()
        for r in records { bytes += LogFormat.frame(r) }
        #expect(bytes == golden)
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        var seen: [LogRecord] = []
        let result = try LogFormat.scan(fd: fd, from: LogFormat.headerSize) { record, _, _ in seen.append(record) }
        #expect(result.stop == .clean)
        #expect(seen == records)
        return seen
    }

    @Test func writeGoldenFileWhenAsked() throws {
        guard let which = ProcessInfo.processInfo.environment["RYZE_WRITE_GOLDEN"] else { return }
        let (path, records) = switch which {
        case "webhooks": (Self.webhooksPath, Self.webhookRecords)
        case "publishers": (Self.publishersPath, Self.publisherRecords)
        case "stream": (Self.streamPath, Self.streamRecords)
        case "generations": (Self.generationsPath, Self.generationRecords)
        default: (Self.path, Self.records)
        }
        var bytes = LogFormat.header()
        for r in records { bytes += LogFormat.frame(r) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
}
