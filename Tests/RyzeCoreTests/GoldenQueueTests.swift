#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import RyzeCore

/// Pins queue_format.md: `Golden/deliveries-v1.log` was written by format version 1 of the
/// delivery queue and is kept as it is. Every later version must still read it, record by
/// record, and still write those records to the same bytes. Never regenerate it to make this
/// test pass: a failure means existing deployments' queues would no longer read (and their
/// pending deliveries would be lost). A new record type gets a golden file of its own.
@Suite struct GoldenQueueTests {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/deliveries-v1.log").path

    /// One of each record type, a batch, an event with several labels and one of each event type.
    static let records: [QueueRecord] = {
        let envelope = Array(#"{"event":"message.exchange","data":{"message":{"media":{"base64":"AAAA","mimetype":"image/png"}}},"instanceData":{"baseUrl":"https://ryze.example","instance":"shop"}}"#.utf8)
        func event(_ id: String, _ type: EventType, _ labels: [String], at: UInt64) -> QueuedEvent {
            QueuedEvent(id: id, account: "acme", instance: "shop", event: type, envelope: envelope,
                        labels: labels.map { WebhookLabel($0)! }, queuedAt: at)
        }
        var out: [QueueRecord] = [
            .queued(event: event("evt_01JDGOLDEN00000000000000001", .messageExchange, ["default", "crm", "ops.v2-x_y"], at: 1_800_000_000_000_000), ids: [1, 2, 3]),
            .attemptFailed(id: 1, attempt: 1, at: 1_800_000_001_000_000, nextDue: 1_800_000_006_000_000, error: "HTTP 503"),
            .delivered(id: 2, attempt: 1, at: 1_800_000_001_000_000, status: 204),
            .dead(id: 3, attempts: 0, at: 1_800_000_001_000_000, error: "target address not allowed"),
            .attemptFailed(id: 1, attempt: 2, at: 1_800_000_006_500_000, nextDue: 1_800_000_306_500_000, error: "timed out"),
            .revived(id: 3, at: 1_800_000_400_000_000),
            .dropped(id: 3, at: 1_800_000_400_100_000, reason: "label disabled"),
            .dead(id: 1, attempts: 10, at: 1_800_300_000_000_000, error: "HTTP 500"),
            .purged(id: 1),
            .nextID(100),
        ]
        let types: [EventType] = [.messageStatus, .callUpdate, .groupFlow, .instanceState, .labelUpdate]
        for (k, t) in types.enumerated() {
            out.append(.queued(event: event("producer:\(k)", t, ["default"], at: 1_800_000_500_000_000), ids: [100 + DeliveryID(k)]))
        }
        out.append(.batch([.delivered(id: 100, attempt: 1, at: 1_800_000_500_100_000, status: 200),
                           .dropped(id: 101, at: 1_800_000_500_100_000, reason: "instance deleted")]))
        return out
    }()

    /// The records of the golden file at `path`, after checking that they are `records`, read
    /// back cleanly, and that `records` still encode to the file's bytes.
    static func pinned(_ path: String, _ records: [QueueRecord]) throws -> [QueueRecord] {
        let golden = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        var bytes = LogFormat.header(.deliveries)
        for r in records { bytes += LogFormat.frame(entry: r) }
        #expect(bytes == golden)
        let fd = open(path, O_RDONLY)
        #expect(fd >= 0, "missing \(path)")
        defer { close(fd) }
        var seen: [QueueRecord] = []
        let result = try LogFormat.scan(fd: fd, from: LogFormat.headerSize, kind: .deliveries) { (r: QueueRecord, _, _) in seen.append(r) }
        #expect(result.stop == .clean)
        #expect(seen == records)
        return seen
    }

    @Test func version1QueueStillReadsAndEncodesToTheSameBytes() throws {
        _ = try Self.pinned(Self.path, Self.records)
        let fd = open(Self.path, O_RDONLY)
        defer { close(fd) }
        var header = [UInt8](repeating: 0, count: LogFormat.headerSize)
        #expect(header.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, 0) } == LogFormat.headerSize)
        #expect(LogFormat.isValidHeader(header[...], .deliveries))
        #expect(!LogFormat.isValidHeader(header[...], .events))
    }

    /// Events queued with label generations (type 10), added to format version 1 without
    /// changing the earlier types: `Golden/deliveries-v1-generations.log`.
    static let generationsPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/deliveries-v1-generations.log").path

    static let generationRecords: [QueueRecord] = [
        .queued(event: QueuedEvent(id: "evt_01JDGOLDEN00000000000000010", account: "acme", instance: "shop", event: .messageExchange,
                                   envelope: Array(#"{"event":"message.exchange","data":{}}"#.utf8),
                                   labels: [.default, WebhookLabel("crm")!], generations: [0x0102_0304_0506_0708, 0],
                                   queuedAt: 1_800_000_000_000_000), ids: [7, 8]),
        .queued(event: QueuedEvent(id: "producer:gen", account: "acme", instance: "desk", event: .callUpdate,
                                   envelope: Array("{}".utf8), labels: [.default], generations: [0xF0E0_D0C0_B0A0_9080],
                                   queuedAt: 1_800_000_000_500_000), ids: [9]),
        .delivered(id: 8, attempt: 1, at: 1_800_000_001_000_000, status: 200),
    ]

    @Test func generationsQueueStillReadsAndEncodesToTheSameBytes() throws {
        let seen = try Self.pinned(Self.generationsPath, Self.generationRecords)
        var q = DeliveryQueue()
        for r in seen { q.apply(r) }
        #expect(q.pending.mapValues(\.labelGeneration) == [7: 0x0102_0304_0506_0708, 9: 0xF0E0_D0C0_B0A0_9080])
    }

    @Test func version1QueueReplaysIntoAStore() throws {
        let dir = TempDirectory()
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.path, toPath: dir.path + "/deliveries.log")
        let q = try QueueStore(directory: dir.path)
        #expect(q.read { $0.pending.keys.sorted() } == [102, 103, 104])
        #expect(q.read { $0.dead.isEmpty && $0.nextID == 105 })
        #expect(q.read { $0.pending[103]?.event.type } == .instanceState)
        // The queue's files are its own: events.log is untouched.
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/events.log"))
    }

    /// Writes the golden file; run once, by hand, when a NEW golden file is added:
    /// `RYZE_WRITE_GOLDEN=deliveries swift test --filter GoldenQueueTests` (or
    /// `deliveries-generations` for the type-10 file).
    @Test func writeGoldenFileWhenAsked() throws {
        let which = ProcessInfo.processInfo.environment["RYZE_WRITE_GOLDEN"]
        guard which == "deliveries" || which == "deliveries-generations" else { return }
        let (path, records) = which == "deliveries" ? (Self.path, Self.records) : (Self.generationsPath, Self.generationRecords)
        var bytes = LogFormat.header(.deliveries)
        for r in records { bytes += LogFormat.frame(entry: r) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
}
