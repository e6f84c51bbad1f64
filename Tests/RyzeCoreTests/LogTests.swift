#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import RyzeCore

@Suite struct LogTests {
    static let samples: [LogRecord] = [
        .accountCreated(name: "acme", token: TokenDigest(of: "t1"), instanceQuota: 7),
        .instanceCreated(account: "acme", name: "i1", token: TokenDigest(of: "t2"), websocket: nil),
        .instanceCreated(account: "acme", name: "i2", token: TokenDigest(of: "t3"),
                         websocket: WebSocketConfig(enabled: true, events: [.groupFlow, .callUpdate], mediaBase64: true)),
        .websocketSaved(account: "acme", name: "i1", websocket: WebSocketConfig(enabled: false)),
        .instanceDeleted(account: "acme", name: "i2"),
        .accountDisabled(name: "acme"),
        .streamClosed(account: "acme", name: "i1", epoch: 7),
    ]

    @Test func recordsRoundTrip() {
        for r in Self.samples {
            let bytes = r.encode()
            #expect(bytes.withUnsafeBytes { LogRecord.decode($0) } == r)
            // Trailing garbage or truncation is not a record.
            #expect((bytes + [0]).withUnsafeBytes { LogRecord.decode($0) } == nil)
            #expect(bytes.dropLast().withUnsafeBytes { LogRecord.decode($0) } == nil)
        }
    }

    @Test func aWebhookWithAGenerationIsType12AndOneWithoutStaysType6() throws {
        let key = DeploymentKey.ID(bytes: [UInt8](repeating: 3, count: DeploymentKey.ID.byteCount))!
        var hook = StoredWebhook(config: WebhookConfig(label: .default, enabled: true, url: "https://hooks.example/x"),
                                 sealedAuthorization: [], sealedSigningSecret: [1, 2, 3], keyID: key)
        let before = LogRecord.webhookSaved(account: "acme", name: "shop", webhook: hook)
        hook.generation = 0x0102_0304_0506_0708
        let after = LogRecord.webhookSaved(account: "acme", name: "shop", webhook: hook)
        #expect(before.encode().first == 6 && after.encode().first == 12)
        #expect(after.encode() == [12] + before.encode().dropFirst() + [8, 7, 6, 5, 4, 3, 2, 1])
        for r in [before, after, .batch([after, .webhookDeleted(account: "acme", name: "shop", label: .default)])] {
            let bytes = r.encode()
            #expect(bytes.withUnsafeBytes { LogRecord.decode($0) } == r)
            #expect((bytes + [0]).withUnsafeBytes { LogRecord.decode($0) } == nil)
            #expect(bytes.dropLast().withUnsafeBytes { LogRecord.decode($0) } == nil)
        }
        // Type 12 with a generation of 0 is not something this version writes: damage.
        let zero = [12] + before.encode().dropFirst() + [UInt8](repeating: 0, count: 8)
        #expect(zero.withUnsafeBytes { LogRecord.decode($0) } == nil)
    }

    @Test func crc32cKnownValue() {
        // The standard check value of CRC-32C.
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        let long = [UInt8](repeating: 0xAB, count: 1000)
        var bytewise: UInt32 = 0xFFFF_FFFF
        for b in long {
            bytewise ^= UInt32(b)
            for _ in 0..<8 { bytewise = (bytewise & 1) != 0 ? (bytewise >> 1) ^ 0x82F6_3B78 : bytewise >> 1 }
        }
        #expect(CRC32C.checksum(long) == ~bytewise)
    }

    func writeLog(_ path: String, _ records: [LogRecord], tail: [UInt8] = []) throws {
        var bytes = LogFormat.header()
        for r in records { bytes += LogFormat.frame(r) }
        bytes += tail
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    func scan(_ path: String) throws -> (LogFormat.ScanResult, [LogRecord]) {
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        var seen: [LogRecord] = []
        let r = try LogFormat.scan(fd: fd, from: LogFormat.headerSize, chunk: 64) { rec, _, _ in seen.append(rec) }
        return (r, seen)
    }

    @Test func scanCleanIncompleteDamaged() throws {
        let dir = TempDirectory()
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        let path = dir.path + "/events.log"
        try writeLog(path, Self.samples)
        let (clean, seen) = try scan(path)
        #expect(clean.stop == .clean)
        #expect(seen == Self.samples)

        let torn = Array(LogFormat.frame(Self.samples[0]).prefix(10))
        try writeLog(path, Self.samples, tail: torn)
        #expect(try scan(path).0.stop == .incomplete)
        #expect(try scan(path).1 == Self.samples)

        var bad = LogFormat.frame(Self.samples[0])
        bad[bad.count - 1] ^= 0xFF
        try writeLog(path, Self.samples, tail: bad)
        #expect(try scan(path).0.stop == .damaged(reason: "checksum mismatch"))
    }

    @Test func storeReplaysAndSharesAcrossInstances() throws {
        let dir = TempDirectory()
        let a = try LogStore(directory: dir.path)
        let b = try LogStore(directory: dir.path)   // a second "process": its own fds and lock
        try a.write { _ in (Self.samples[0], ()) }
        try b.refresh()
        #expect(b.read { $0.accounts["acme"]?.instanceQuota } == 7)
        try b.write { _ in (Self.samples[1], ()) }
        try a.refresh()
        #expect(a.read { $0.instance(account: "acme", name: "i1") } != nil)
        let c = try LogStore(directory: dir.path)
        #expect(c.read { $0.instances.count } == 1)
        let mode = try FileManager.default.attributesOfItem(atPath: dir.path + "/events.log")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let dirMode = try FileManager.default.attributesOfItem(atPath: dir.path)[.posixPermissions] as? Int
        #expect(dirMode == 0o700)
    }

    @Test func tornTailIsCutAtOpen() throws {
        let dir = TempDirectory()
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        let path = dir.path + "/" + LogStore.logName
        try writeLog(path, Array(Self.samples.prefix(3)), tail: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
        let store = try LogStore(directory: dir.path)
        #expect(store.read { $0.instances.count } == 2)
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int
        #expect(size == store.stats.bytes)
        // And appends after the valid prefix.
        try store.write { _ in (Self.samples[3], ()) }
        #expect(try scan(path).0.stop == .clean)
    }

    @Test func damageInTheMiddleRefusesToOpen() throws {
        let dir = TempDirectory()
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        let path = dir.path + "/" + LogStore.logName
        var bytes = LogFormat.header()
        bytes += LogFormat.frame(Self.samples[0])
        let damagedAt = bytes.count
        var f = LogFormat.frame(Self.samples[1])
        f[12] ^= 0x55
        bytes += f + LogFormat.frame(Self.samples[2])
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(throws: StoreError.damaged(path: path, offset: damagedAt, reason: "checksum mismatch")) {
            _ = try LogStore(directory: dir.path)
        }
    }

    @Test func compactionKeepsStateAndOthersFollow() throws {
        let dir = TempDirectory()
        let a = try LogStore(directory: dir.path)
        let b = try LogStore(directory: dir.path)
        for r in Self.samples.prefix(4) { try a.write { _ in (r, ()) } }
        for _ in 0..<20 {
            try a.write { _ in (LogRecord.websocketSaved(account: "acme", name: "i1", websocket: WebSocketConfig(enabled: true)), ()) }
        }
        let before = a.read { $0.liveRecords }
        let result = try a.compact()
        #expect(result.recordsAfter == before.count)
        #expect(result.bytesAfter < result.bytesBefore)
        #expect(a.read { $0.liveRecords } == before)
        try b.refresh()
        #expect(b.read { $0.liveRecords } == before)
        try b.write { _ in (LogRecord.instanceDeleted(account: "acme", name: "i1"), ()) }
        try a.refresh()
        #expect(a.read { $0.instance(account: "acme", name: "i1") } == nil)
        #expect(a.read { $0.instances.count } == 1)
    }

    /// Another process's batch read before its append failed and was cut back (simulated: the
    /// frame is written and counted by hand, then cut): the reader must not keep its records,
    /// nor go on from an offset inside what the next writer appends there.
    @Test func aReaderReplaysAfterAWriterCutABatchBack() throws {
        let dir = TempDirectory()
        let a = try LogStore(directory: dir.path)
        let b = try LogStore(directory: dir.path)
        try a.write { _ in (Self.samples[0], ()) }
        let path = dir.path + "/events.log"
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        let counter = try ChangeCounter(path: dir.path + "/events.seq")
        let phantom = LogRecord.instanceCreated(account: "acme", name: "phantom", token: TokenDigest(of: "t9"), websocket: nil)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try h.seekToEnd()
        try h.write(contentsOf: Data(LogFormat.frame(phantom)))
        counter.bump()
        try b.refresh()
        #expect(b.read { $0.instance(account: "acme", name: "phantom") } != nil)   // read while "in flight"
        // The append fails: cut back, counted, and the next batch goes where it was.
        try h.truncate(atOffset: UInt64(size))
        try h.close()
        counter.bumpCutBacks()
        counter.bump()
        try a.write { _ in (Self.samples[1], ()) }
        try b.refresh()
        #expect(b.read { $0.instance(account: "acme", name: "phantom") } == nil)
        #expect(b.read { $0.instance(account: "acme", name: "i1") } != nil)
        try b.write { _ in (Self.samples[3], ()) }
        #expect(try LogStore(directory: dir.path).read { $0.instance(account: "acme", name: "i1")?.websocket } == WebSocketConfig(enabled: false))
    }

    @Test func refusedWriteAppendsNothing() throws {
        let dir = TempDirectory()
        let s = try LogStore(directory: dir.path)
        let bytes = s.stats.bytes
        #expect(throws: TestFailure.self) { try s.write { _ -> (LogRecord?, Void) in throw TestFailure("no") } }
        try s.write { _ in (nil, ()) }
        #expect(s.stats.bytes == bytes)
    }
}

@Suite struct GroupCommitTests {
    @Test func concurrentWritersAreAllDurableAndDecidedInOrder() async throws {
        let dir = TempDirectory()
        let a = try LogStore(directory: dir.path)
        let b = try LogStore(directory: dir.path)   // another "process" writing at the same time
        try a.write { _ in (LogRecord.accountCreated(name: "acme", token: TokenDigest(of: "acct"), instanceQuota: 0), ()) }
        // 64 writers race to create 16 names: each name exactly once, whichever store wins.
        let created = await withTaskGroup(of: Bool.self) { group in
            for k in 0..<64 {
                let store = k % 2 == 0 ? a : b
                group.addTask {
                    do {
                        try store.write { state -> (LogRecord?, Void) in
                            let name = "i\(k % 16)"
                            if state.instance(account: "acme", name: name) != nil { throw TestFailure("exists") }
                            return (.instanceCreated(account: "acme", name: name, token: TokenDigest(of: "t\(k)"), websocket: nil), ())
                        }
                        return true
                    } catch {
                        return false
                    }
                }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(created == 16)
        let reopened = try LogStore(directory: dir.path)
        #expect(reopened.read { $0.instances.count } == 16)
        #expect(reopened.stats.records == 17)
        try a.refresh()
        #expect(a.read { $0.instances.count } == 16)
    }

    /// Many more writer threads than cores, each writing as fast as it can: a writer woken by one
    /// leader's broadcast while the next leader is committing its record must not return before
    /// that leader has let go of its closure (it used to trap in withoutActuallyEscaping).
    @Test func manyWriterThreadsEachGetTheirOwnOutcome() throws {
        let dir = TempDirectory()
        let store = try LogStore(directory: dir.path)
        try store.write { _ in (LogRecord.accountCreated(name: "acme", token: TokenDigest(of: "acct"), instanceQuota: 0), ()) }
        try store.write { _ in (LogRecord.instanceCreated(account: "acme", name: "i", token: TokenDigest(of: "t"), websocket: nil), ()) }
        let threads = 16, writes = 300
        final class Failures: @unchecked Sendable {
            let lock = NSLock()
            var count = 0
            func add() { lock.lock(); count += 1; lock.unlock() }
        }
        final class Job: @unchecked Sendable {
            let run: () -> Void
            init(_ run: @escaping () -> Void) { self.run = run }
        }
        let failures = Failures()
        var ids: [pthread_t] = []
        for t in 0..<threads {
            let job = Job {
                for k in 0..<writes {
                    let config = WebSocketConfig(enabled: true, events: [EventType.allCases[(t + k) % 6]])
                    do {
                        let echoed = try store.write { _ in
                            (LogRecord.websocketSaved(account: "acme", name: "i", websocket: config), config)
                        }
                        if echoed != config { failures.add() }
                    } catch {
                        failures.add()
                    }
                }
            }
            var id = pthread_t()
            let rc = pthread_create(&id, nil, { arg in
                Unmanaged<Job>.fromOpaque(arg!).takeRetainedValue().run()
                return nil
            }, Unmanaged.passRetained(job).toOpaque())
            #expect(rc == 0)
            ids.append(id)
        }
        for id in ids { pthread_join(id, nil) }
        #expect(failures.count == 0)
        #expect(try LogStore(directory: dir.path).stats.records == 2 + threads * writes)
    }
}

@Suite struct LogStoreShapeTests {
    /// The writer that crosses the threshold returns at once; the compactor thread rewrites the
    /// log after it.
    @Test func automaticCompactionRunsOffTheWritersThread() throws {
        let dir = TempDirectory()
        let store = try LogStore(directory: dir.path, autoCompactionFactor: 2)
        try store.write { _ in (LogRecord.accountCreated(name: "acme", token: TokenDigest(of: "acct"), instanceQuota: 0), ()) }
        try store.write { _ in (LogRecord.instanceCreated(account: "acme", name: "i", token: TokenDigest(of: "t"), websocket: nil), ()) }
        for k in 0..<(LogStore.autoCompactionMinimum - 2) {   // the last write crosses the threshold
            let config = WebSocketConfig(enabled: k % 2 == 0)
            try store.write { _ in (LogRecord.websocketSaved(account: "acme", name: "i", websocket: config), ()) }
        }
        let deadline = Date().addingTimeInterval(10)
        while store.stats.records > 10 && Date() < deadline { usleep(20_000) }
        #expect(store.stats.records == 2)
        #expect(try LogStore(directory: dir.path).read { $0.instance(account: "acme", name: "i")?.websocket } == WebSocketConfig(enabled: false))
    }

    /// `decide` refuses with its own error type, which comes back unchanged; its value otherwise.
    @Test func writesAreTypedEndToEnd() throws {
        let dir = TempDirectory()
        let store = try LogStore(directory: dir.path)
        struct No: Error, Equatable { var why: String }
        #expect(throws: No(why: "taken")) {
            try store.write { _ throws(No) -> (LogRecord?, Int) in throw No(why: "taken") }
        }
        let value = try store.write { _ in (LogRecord.accountCreated(name: "a", token: TokenDigest(of: "x"), instanceQuota: 1), 42) }
        #expect(value == 42)
        #expect(store.stats.writable)
    }

    @Test func maintenanceReadsUnderTheLockAndRepairs() throws {
        let dir = TempDirectory()
        let store = try LogStore(directory: dir.path)
        for r in LogTests.samples.prefix(3) { try store.write { _ in (r, ()) } }
        let files = DataFiles(directory: dir.path)
        guard case .ok(let records, _) = try LogMaintenance.verify(files) else { Issue.record("not ok"); return }
        #expect(records == 3)
        var dumped: [LogRecord] = []
        _ = try LogMaintenance.dump(files) { _, r in dumped.append(r) }
        #expect(dumped == Array(LogTests.samples.prefix(3)))
        guard case .nothingToRepair(3) = try LogMaintenance.repair(files, backupSuffix: "t") else { Issue.record("repaired"); return }
    }
}
