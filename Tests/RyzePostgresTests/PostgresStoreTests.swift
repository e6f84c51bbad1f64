import Foundation
import RyzeCore
import Testing
@testable import RyzePostgres

/// Against a real PostgreSQL: deploy/test.sh starts a throwaway one (Tests/e2e/pg_server.py)
/// and sets RYZE_TEST_POSTGRES_URL to its base URL; without it these tests are skipped.
let postgresBase = ProcessInfo.processInfo.environment["RYZE_TEST_POSTGRES_URL"]

/// A fresh database per test, so tests never see each other's rows.
func freshDatabase() throws -> String {
    let base = try #require(postgresBase)
    let name = "u_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
    let c = try PGConnection.connect(url: base + "/postgres", deadline: .after(milliseconds: 5000))
    try c.execute("CREATE DATABASE \(name)", deadline: .after(milliseconds: 10_000))
    return base + "/" + name
}

func instanceRecord(_ account: String, _ name: String) -> LogRecord {
    .instanceCreated(account: account, name: name, token: TokenDigest(of: account + "/" + name), websocket: nil)
}

struct QuotaExceeded: Error {}

/// Creates an instance if the account's quota allows it, as the handler does.
func createInstance(_ store: some StateStore, account: String, name: String) throws -> Bool {
    do {
        try store.write { state throws(QuotaExceeded) -> (LogRecord?, Void) in
            let a = state.accounts[account]!
            guard a.instanceQuota == 0 || a.instances.count < Int(a.instanceQuota) else { throw QuotaExceeded() }
            return (instanceRecord(account, name), ())
        }
        return true
    } catch is QuotaExceeded {
        return false
    }
}

func waitUntil(milliseconds: Int, _ condition: () -> Bool) -> Bool {
    let deadline = Deadline.after(milliseconds: milliseconds)
    while !condition() {
        if deadline.remainingMilliseconds == 0 { return false }
        usleep(10_000)
    }
    return true
}

@Suite(.enabled(if: postgresBase != nil, "RYZE_TEST_POSTGRES_URL is not set"), .serialized)
struct PostgresStoreTests {
    @Test func migrationsAreAppliedOnceAndAgainChangeNothing() throws {
        let url = try freshDatabase()
        let c = try PGConnection.connect(url: url, deadline: .after(milliseconds: 5000))
        #expect(try Migrator.migrate(c, logger: .init(label: "test")) == Schema.migrations.map(\.version))
        #expect(try Migrator.migrate(c, logger: .init(label: "test")) == [])
        let rows = try c.execute("SELECT count(*)::int8 FROM ryze_schema_migrations", deadline: .after(milliseconds: 5000))
        #expect(rows.int(0, 0) == Int64(Schema.migrations.count))
    }

    @Test func concurrentStartersSerializeOnTheMigrationLock() throws {
        let url = try freshDatabase()
        let failures = Counter()
        DispatchQueue.concurrentPerform(iterations: 6) { _ in
            do { _ = try PostgresStore(url: url, options: .init(follow: false)) } catch { failures.add() }
        }
        #expect(failures.value == 0)
    }

    @Test func aNewerSchemaIsRefused() throws {
        let url = try freshDatabase()
        _ = try PostgresStore(url: url, options: .init(follow: false))
        let c = try PGConnection.connect(url: url, deadline: .after(milliseconds: 5000))
        try c.execute("INSERT INTO ryze_schema_migrations (version, name) VALUES (999, 'future')", deadline: .after(milliseconds: 5000))
        #expect(throws: StoreError.self) { _ = try PostgresStore(url: url, options: .init(follow: false)) }
    }

    @Test func everyKindOfRecordSurvivesAReload() throws {
        let url = try freshDatabase()
        let a = try PostgresStore(url: url, options: .init(follow: false))
        try Accounts.create(in: a, name: "acme", token: "t-acme", instanceQuota: 10)
        try Accounts.create(in: a, name: "gone", token: "t-gone", instanceQuota: 0)
        try Accounts.disable(in: a, name: "gone")
        try Publishers.create(in: a, name: "pub", token: "t-pub")
        try Publishers.create(in: a, name: "old", token: "t-old")
        try Publishers.disable(in: a, name: "old")
        let ws = WebSocketConfig(enabled: true, events: [.callUpdate, .messageExchange], mediaBase64: true)
        let hook = StoredWebhook(
            config: WebhookConfig(label: WebhookLabel("default")!, enabled: true, url: "https://example.com/h", authorization: "",
                                  byEvents: true, events: [.groupFlow], mediaBase64: false),
            sealedAuthorization: [1, 2, 3], sealedSigningSecret: [4, 5, 6, 7], keyID: DeploymentKey.ID(bytes: [1, 2, 3, 4, 5, 6, 7, 8])!,
            generation: 0xFEDC_BA98_7654_3210)   // above Int64.max: stored as a negative int8, read back the same
        try a.write { _ in (LogRecord.batch([instanceRecord("acme", "shop"), .websocketSaved(account: "acme", name: "shop", websocket: ws)]), ()) }
        try a.write { _ in (LogRecord.webhookSaved(account: "acme", name: "shop", webhook: hook), ()) }
        try a.write { _ in (LogRecord.instanceCreated(account: "acme", name: "bare", token: TokenDigest(of: "x"), websocket: nil), ()) }
        try a.write { _ in (LogRecord.instanceCreated(account: "acme", name: "tmp", token: TokenDigest(of: "y"), websocket: nil), ()) }
        try a.write { _ in (LogRecord.webhookSaved(account: "acme", name: "tmp", webhook: hook), ()) }
        try a.write { _ in (LogRecord.instanceDeleted(account: "acme", name: "tmp"), ()) }

        let b = try PostgresStore(url: url, options: .init(follow: false))
        let followed = a.read { $0.liveRecords }
        let loaded = b.read { $0.liveRecords }
        #expect(followed == loaded)
        #expect(b.instance(.init(account: "acme", name: "shop"))?.websocket == ws)
        #expect(b.instance(.init(account: "acme", name: "shop"))?.webhooks[hook.label] == hook)
        #expect(b.principal(for: TokenDigest(of: "t-gone")) == nil)
        #expect(b.principal(for: TokenDigest(of: "t-pub")) == .publisher("pub"))
        #expect(a.sequence == b.sequence)
    }

    @Test func aRefusalOrAConstraintViolationWritesNothingAndReleasesTheLock() throws {
        let url = try freshDatabase()
        let a = try PostgresStore(url: url, options: .init(follow: false))
        try Accounts.create(in: a, name: "acme", token: "t-acme", instanceQuota: 0)
        let before = a.sequence
        // decide refuses: rolled back, the lock released.
        #expect(throws: QuotaExceeded.self) { try a.write { _ throws(QuotaExceeded) -> (LogRecord?, Void) in throw QuotaExceeded() } }
        // decide lets through what the tables refuse (a token digest held by another account):
        // the unique constraint stops it, and neither the tables nor the copy change.
        #expect(throws: StoreError.self) {
            try a.write { _ in (LogRecord.accountCreated(name: "twin", token: TokenDigest(of: "t-acme"), instanceQuota: 0), ()) }
        }
        #expect(a.sequence == before)
        #expect(a.read { $0.accounts["twin"] } == nil)
        try Accounts.create(in: a, name: "next", token: "t-next", instanceQuota: 0)
        #expect(a.sequence == before + 1)
        let b = try PostgresStore(url: url, options: .init(follow: false))
        #expect(b.read { $0.accounts.keys.sorted() } == ["acme", "next"])
    }

    @Test func concurrentWritersOnTwoHostsKeepTheQuota() throws {
        let url = try freshDatabase()
        let hosts = [try PostgresStore(url: url, options: .init(follow: false)),
                     try PostgresStore(url: url, options: .init(follow: false))]
        try Accounts.create(in: hosts[0], name: "acme", token: "t-acme", instanceQuota: 5)
        for h in hosts { try h.refresh() }
        let created = Counter(), failed = Counter()
        DispatchQueue.concurrentPerform(iterations: 16) { i in
            do {
                if try createInstance(hosts[i % 2], account: "acme", name: "i\(i)") { created.add() }
            } catch {
                failed.add()
            }
        }
        #expect(failed.value == 0)
        #expect(created.value == 5)
        let check = try PostgresStore(url: url, options: .init(follow: false))
        #expect(check.read { $0.accounts["acme"]!.instances.count } == 5)
    }

    @Test func aFollowerSeesAnotherHostsWritesWithinASecond() throws {
        let url = try freshDatabase()
        let follower = try PostgresStore(url: url, options: .init(follow: true))
        defer { follower.close() }
        let writer = try PostgresStore(url: url, options: .init(follow: false))
        try Accounts.create(in: writer, name: "acme", token: "t-acme", instanceQuota: 0)
        #expect(waitUntil(milliseconds: 1000) { follower.principal(for: TokenDigest(of: "t-acme")) == .account("acme") })
        try Accounts.disable(in: writer, name: "acme")
        #expect(waitUntil(milliseconds: 1000) { follower.principal(for: TokenDigest(of: "t-acme")) == nil })
        try follower.refresh()
        #expect(follower.sequence == writer.sequence)
    }

    @Test func aFollowerFarBehindReloadsTheWholeState() throws {
        let url = try freshDatabase()
        let behind = try PostgresStore(url: url, options: .init(follow: false))
        let writer = try PostgresStore(url: url, options: .init(follow: false))
        try Accounts.create(in: writer, name: "acme", token: "t-acme", instanceQuota: 0)
        try Accounts.create(in: writer, name: "beta", token: "t-beta", instanceQuota: 0)
        // As if these changes had been pruned: the follower must notice the gap, not skip it.
        let c = try PGConnection.connect(url: url, deadline: .after(milliseconds: 5000))
        try c.execute("DELETE FROM ryze_changes", deadline: .after(milliseconds: 5000))
        try behind.refresh()
        #expect(behind.principal(for: TokenDigest(of: "t-beta")) == .account("beta"))
        #expect(behind.sequence == writer.sequence)
    }

    @Test func unreachableServerFailsFastAsUnavailable() throws {
        // A port nothing listens on: refused at once. A black hole would take the connect deadline.
        let started = Deadline.now
        #expect {
            _ = try PostgresStore(url: "postgresql://postgres@127.0.0.1:9/x", options: .init(follow: false))
        } throws: { error in
            (error as? StoreError)?.isUnavailable == true
        }
        #expect(Deadline.now - started < 6_000_000_000)
    }

    @Test func aFollowerThatLostItsServerRefusesThenResumes() throws {
        // Kill this store's sessions from another: the follower must mark itself unavailable,
        // reconnect by itself and reload.
        let url = try freshDatabase()
        let follower = try PostgresStore(url: url, options: .init(follow: true))
        defer { follower.close() }
        try follower.refresh()
        let admin = try PGConnection.connect(url: url, deadline: .after(milliseconds: 5000))
        let writer = try PostgresStore(url: url, options: .init(follow: false))
        try admin.execute("""
            SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE application_name = 'ryze-events' AND pid <> pg_backend_pid() AND datname = current_database()
            """, deadline: .after(milliseconds: 5000))
        try Accounts.create(in: writer, name: "late", token: "t-late", instanceQuota: 0)
        #expect(waitUntil(milliseconds: 3000) { follower.principal(for: TokenDigest(of: "t-late")) == .account("late") })
        #expect(waitUntil(milliseconds: 3000) { (try? follower.refresh()) != nil })
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}

@Suite(.enabled(if: postgresBase != nil, "RYZE_TEST_POSTGRES_URL is not set"), .serialized)
struct StoreMigrateTests {
    @Test func aOneHostStateIsCopiedWholeAndFollowersReload() throws {
        var source = State()
        let hook = StoredWebhook(
            config: WebhookConfig(label: WebhookLabel("crm")!, enabled: true, url: "https://example.com/h"),
            sealedAuthorization: [], sealedSigningSecret: [9, 9], keyID: DeploymentKey.ID(bytes: [8, 7, 6, 5, 4, 3, 2, 1])!)
        for r: LogRecord in [
            .accountCreated(name: "acme", token: TokenDigest(of: "t-acme"), instanceQuota: 3),
            .accountCreated(name: "old", token: TokenDigest(of: "t-old"), instanceQuota: 0),
            .accountDisabled(name: "old"),
            instanceRecord("acme", "shop"),
            .webhookSaved(account: "acme", name: "shop", webhook: hook),
            .publisherCreated(name: "pub", token: TokenDigest(of: "t-pub")),
        ] { source.apply(r) }

        let url = try freshDatabase()
        let follower = try PostgresStore(url: url, options: .init(follow: true))
        defer { follower.close() }
        let target = try PostgresStore(url: url, options: .init(follow: false))
        #expect(try target.importRecords(source.liveRecords) == source.liveRecords.count)
        #expect(target.read { $0.liveRecords } == source.liveRecords)
        #expect(waitUntil(milliseconds: 1000) { follower.read { $0.liveRecords } == source.liveRecords })
        // Only into an empty database: a second copy is refused and changes nothing.
        #expect(throws: StoreError.self) { _ = try target.importRecords(source.liveRecords) }
        let again = try PostgresStore(url: url, options: .init(follow: false))
        #expect(again.read { $0.liveRecords } == source.liveRecords)
    }
}
