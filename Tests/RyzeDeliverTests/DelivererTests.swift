import Foundation
import Testing
@testable import RyzeCore
@testable import RyzeDeliver
@testable import RyzeHTTP

/// A data directory with one instance and its webhooks, a queue, and a deliverer whose
/// requests go to a fake transport: the scheduling, retry, drop and pause rules without a
/// network. (The real client is covered by RyzeHTTPTests, the whole by Tests/e2e.)
final class Fixture: @unchecked Sendable {
    let dir = NSTemporaryDirectory() + "ryze-deliver-" + UUID().uuidString
    let store: LogStore
    let queue: QueueStore
    let box: SecretBox
    let secret = SigningSecret(text: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")!

    init() throws {
        store = try LogStore(directory: dir)
        queue = try QueueStore(directory: dir)
        box = SecretBox(key: try DeploymentKey.loadOrCreate(path: dir + "/secret.key", create: true))
        try store.write { _ in (LogRecord.accountCreated(name: "acme", token: TokenDigest(of: "acct-token-0000001"), instanceQuota: 0), ()) }
        try store.write { _ in (LogRecord.instanceCreated(account: "acme", name: "shop", token: TokenDigest(of: "inst-token-0000001"), websocket: nil), ()) }
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    func saveWebhook(_ label: String, url: String, enabled: Bool = true, authorization: String = "", byEvents: Bool = false,
                     mediaBase64: Bool = false, generation: UInt64 = 0) throws {
        let l = WebhookLabel(label)!
        func ctx(_ f: String) -> String { StoredWebhook.context(account: "acme", instance: "shop", label: l, field: f) }
        let config = WebhookConfig(label: l, enabled: enabled, url: url, authorization: authorization, byEvents: byEvents, mediaBase64: mediaBase64)
        let hook = StoredWebhook(config: config,
                                 sealedAuthorization: authorization.isEmpty ? [] : box.seal(authorization, context: ctx("authorization")),
                                 sealedSigningSecret: box.seal(secret.text, context: ctx("signingSecret")), keyID: box.key.id,
                                 generation: generation)
        try store.write { _ in (LogRecord.webhookSaved(account: "acme", name: "shop", webhook: hook), ()) }
    }

    func enqueue(_ id: String, labels: [String], generations: [UInt64]? = nil,
                 body: String = #"{"event":"message.exchange","data":{"message":{"media":{"base64":"AAAA"}}}}"#) throws {
        try queue.enqueue(QueuedEvent(id: id, account: "acme", instance: "shop", event: .messageExchange, envelope: Array(body.utf8),
                                      labels: labels.map { WebhookLabel($0)! }, generations: generations, queuedAt: WallClock.system.nowMicroseconds()))
    }

    /// Runs a deliverer until `until` holds (or 10 s pass), then stops it and returns why it stopped.
    func run(_ transport: FakeTransport, _ configuration: Deliverer.Configuration = .init(concurrency: 4, retry: RetryPolicy(waits: [0.2, 0.2]), timeout: 2),
             store: (any StateStore)? = nil, until: @escaping () -> Bool) throws -> Deliverer.StopReason {
        let d = Deliverer(configuration: configuration, queue: queue, store: store ?? self.store, secrets: box,
                          stripMedia: { Array(String(decoding: $0, as: UTF8.self).replacingOccurrences(of: #""base64":"AAAA""#, with: #""stripped":true"#).utf8) },
                          resolver: TargetResolver(allowPrivate: false) { host in
                              host.hasSuffix(".internal") ? .success([IPAddress("10.0.0.7")!]) : .success([IPAddress("93.184.216.34")!])
                          },
                          makeTransport: { transport })
        let result = LockedBox<Deliverer.StopReason?>(nil)
        let thread = Thread { result.set(d.run()) }
        thread.start()
        let deadline = Date().addingTimeInterval(10)
        while !until() && Date() < deadline { usleep(10_000) }
        d.stop()
        while result.get() == nil { usleep(10_000) }
        #expect(until(), "condition not met in time")
        return result.get()!
    }

    var status: DeliveryStatus { queue.status() }

    /// `count` events, each with a delivery to every one of `labels`, queued in one record.
    func enqueueMany(_ count: Int, labels: [String]) throws {
        let now = WallClock.system.nowMicroseconds()
        try queue.log.write { q -> (QueueRecord?, Void) in
            var next = q.nextID
            var records: [QueueRecord] = []
            for k in 0..<count {
                let e = QueuedEvent(id: "evt_b\(k)", account: "acme", instance: "shop", event: .messageExchange,
                                    envelope: Array(#"{"event":"message.exchange","data":{}}"#.utf8),
                                    labels: labels.map { WebhookLabel($0)! }, queuedAt: now)
                records.append(.queued(event: e, ids: (0..<labels.count).map { next + DeliveryID($0) }))
                next += DeliveryID(labels.count)
            }
            return (.batch(records), ())
        }
    }
}

/// A store whose copy lags, as a PostgreSQL store's follower may (up to a second): `refresh`
/// changes nothing and reads see the state as it was when it was made, until `synchronize`.
final class LaggingStore: StateStore, @unchecked Sendable {
    let real: LogStore
    private let stale: State
    let synchronized = LockedBox(false)

    init(_ real: LogStore) {
        self.real = real
        stale = real.read { $0 }
    }

    func refresh() throws(StoreError) {}
    func synchronize() throws(StoreError) {
        try real.refresh()
        synchronized.set(true)
    }
    func read<T, E: Error>(_ body: (State) throws(E) -> T) throws(E) -> T {
        synchronized.get() ? try real.read(body) : try body(stale)
    }
    func principal(for token: TokenDigest) -> State.Principal? { real.principal(for: token) }
    func instance(_ key: State.InstanceKey) -> State.Instance? { real.instance(key) }
    func write<T, E: Error>(_ decide: (State) throws(E) -> (LogRecord?, T)) throws -> T { try real.write(decide) }
    var stats: StoreStats { real.stats }
}

final class LockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ v: T) { value = v }
    func get() -> T { lock.withLock { value } }
    func set(_ v: T) { lock.withLock { value = v } }
    func update(_ f: (inout T) -> Void) { lock.withLock { f(&value) } }
}

/// Answers each request with what `answer` says, after `delay` seconds, and keeps every request.
final class FakeTransport: DeliveryTransport, @unchecked Sendable {
    let answer: @Sendable (HTTPClient.Request, Int) -> (Result<HTTPClient.Response, HTTPClient.Failure>, Double)
    let seen = LockedBox<[HTTPClient.Request]>([])
    let concurrent = LockedBox<(now: [String: Int], max: [String: Int])>(([:], [:]))

    init(_ answer: @escaping @Sendable (HTTPClient.Request, Int) -> (Result<HTTPClient.Response, HTTPClient.Failure>, Double)) {
        self.answer = answer
    }

    static func status(_ s: Int, headers: [(String, String)] = []) -> Result<HTTPClient.Response, HTTPClient.Failure> {
        .success(HTTPClient.Response(status: s, headers: headers, body: []))
    }

    func perform(_ request: HTTPClient.Request) -> Result<HTTPClient.Response, HTTPClient.Failure> {
        let host = Endpoint(url: request.url)!.host
        var n = 0
        seen.update { $0.append(request); n = $0.count }
        concurrent.update { c in
            c.now[host, default: 0] += 1
            c.max[host] = max(c.max[host] ?? 0, c.now[host]!)
        }
        let (result, delay) = answer(request, n)
        if delay > 0 { usleep(UInt32(delay * 1_000_000)) }
        concurrent.update { $0.now[host]! -= 1 }
        return result
    }

    var requests: [HTTPClient.Request] { seen.get() }
}

extension HTTPClient.Request {
    func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
}

@Suite(.serialized) struct DelivererTests {
    @Test func aLabelTheCopyDoesNotKnowYetIsNotDroppedButLookedUpAgain() throws {
        let f = try Fixture()
        let lagging = LaggingStore(f.store)
        // Saved (on "another host") after the deliverer's copy was taken, then published.
        try f.saveWebhook("late", url: "https://hooks.example.com/late")
        try f.enqueue("evt_late", labels: ["late"])
        let t = FakeTransport { _, _ in (FakeTransport.status(204), 0) }
        #expect(try f.run(t, store: lagging) { t.requests.count == 1 && f.status.queued == 0 } == .requested)
        #expect(lagging.synchronized.get())
        #expect(t.requests.map(\.url) == ["https://hooks.example.com/late"])
        #expect(f.status.dropped == 0)
    }

    @Test func aDeliveryIsSignedSentAndRecorded() throws {
        let f = try Fixture()
        try f.saveWebhook("default", url: "https://hooks.example.com/in", authorization: "Bearer crm-secret")
        try f.saveWebhook("crm", url: "https://crm.example.com/h", byEvents: true, mediaBase64: true)
        try f.enqueue("evt_1", labels: ["default", "crm"])
        let t = FakeTransport { _, _ in (FakeTransport.status(204), 0) }
        #expect(try f.run(t) { t.requests.count == 2 && f.status.queued == 0 } == .requested)

        let byURL = Dictionary(uniqueKeysWithValues: t.requests.map { ($0.url, $0) })
        let plain = try #require(byURL["https://hooks.example.com/in"])
        #expect(plain.method == "POST" && plain.pinnedAddress == "93.184.216.34" && plain.timeout == 2)
        #expect(plain.header("Content-Type") == "application/json" && plain.header("User-Agent") == "ryze-events/\(Deliverer.version)")
        #expect(plain.header("Authorization") == "Bearer crm-secret")
        #expect(plain.header("webhook-id") == "evt_1")
        let ts = try #require(plain.header("webhook-timestamp").flatMap(Int64.init))
        #expect(abs(ts - Int64(Date().timeIntervalSince1970)) < 10)
        #expect(String(decoding: plain.body, as: UTF8.self).contains(#""stripped":true"#), "mediaBase64 false: media stripped")
        #expect(plain.header("webhook-signature") == f.secret.signature(webhookID: "evt_1", timestamp: ts, body: plain.body))

        let byEvents = try #require(byURL["https://crm.example.com/h/message.exchange"])
        #expect(byEvents.header("Authorization") == nil)
        #expect(String(decoding: byEvents.body, as: UTF8.self).contains(#""base64":"AAAA""#), "mediaBase64 true: kept")
        #expect(f.status == DeliveryStatus(queued: 0, inFlight: 0, delivered: 2, retrying: 0, dead: 0, dropped: 0))
    }

    @Test func failuresAreRetriedWithTheSameIDThenDead() throws {
        let f = try Fixture()
        try f.saveWebhook("default", url: "https://hooks.example.com/in")
        try f.enqueue("evt_r", labels: ["default"])
        let t = FakeTransport { _, _ in (FakeTransport.status(500), 0) }
        _ = try f.run(t) { f.status.dead == 1 }
        #expect(t.requests.count == 3, "three attempts with two waits")
        #expect(Set(t.requests.compactMap { $0.header("webhook-id") }) == ["evt_r"])
        let dead = try f.queue.deadLetters()
        #expect(dead.count == 1 && dead[0].attempts == 3 && dead[0].lastError == "HTTP 500")
    }

    @Test func retryAfterOn429IsHonoured() throws {
        let f = try Fixture()
        try f.saveWebhook("default", url: "https://hooks.example.com/in")
        try f.enqueue("evt_429", labels: ["default"])
        let times = LockedBox<[Date]>([])
        let t = FakeTransport { _, n in
            times.update { $0.append(Date()) }
            return (n == 1 ? FakeTransport.status(429, headers: [("retry-after", "1")]) : FakeTransport.status(200), 0)
        }
        _ = try f.run(t) { f.status.delivered == 1 }
        let ts = times.get()
        #expect(ts.count == 2)
        #expect(ts[1].timeIntervalSince(ts[0]) >= 0.95, "waited the 1 s asked for, not the 0.2 s schedule")
    }

    @Test func redirectsAndTransportFailuresAreFailedAttempts() throws {
        let f = try Fixture()
        try f.saveWebhook("default", url: "https://hooks.example.com/in")
        try f.enqueue("evt_302", labels: ["default"])
        let t = FakeTransport { _, n in
            (n == 1 ? FakeTransport.status(302, headers: [("location", "https://elsewhere/")]) : n == 2 ? .failure(.timeout) : .failure(.transport("Connection refused")), 0)
        }
        _ = try f.run(t) { f.status.dead == 1 }
        #expect(t.requests.map(\.url) == Array(repeating: "https://hooks.example.com/in", count: 3))
        #expect(try f.queue.deadLetters()[0].lastError == "Connection refused")
    }

    @Test func privateTargetsAreDeadWithoutARequest() throws {
        let f = try Fixture()
        try f.saveWebhook("default", url: "http://db.internal/in")
        try f.enqueue("evt_p", labels: ["default"])
        let t = FakeTransport { _, _ in (FakeTransport.status(200), 0) }
        _ = try f.run(t) { f.status.dead == 1 }
        #expect(t.requests.isEmpty)
        let dead = try f.queue.deadLetters()
        #expect(dead[0].lastError == "target address not allowed" && dead[0].attempts == 0)
    }

    @Test func disabledOrDeletedLabelsAreDroppedNotSent() throws {
        let f = try Fixture()
        try f.saveWebhook("default", url: "https://hooks.example.com/in")
        try f.saveWebhook("off", url: "https://off.example.com/in")
        try f.saveWebhook("gone", url: "https://gone.example.com/in")
        try f.saveWebhook("off", url: "", enabled: false)
        try f.store.write { _ in (LogRecord.webhookDeleted(account: "acme", name: "shop", label: WebhookLabel("gone")!), ()) }
        try f.enqueue("evt_d", labels: ["default", "off", "gone", "never"])
        let t = FakeTransport { _, _ in (FakeTransport.status(200), 0) }
        _ = try f.run(t) { f.status.dropped == 3 && f.status.delivered == 1 }
        #expect(t.requests.map(\.url) == ["https://hooks.example.com/in"])
    }

    @Test func aLabelSavedAgainAfterADeleteOrADisableNeverGetsTheOldDeliveries() throws {
        // SPEC §4/§6.3: the queued deliveries of a deleted or disabled label are dropped; the
        // label saved again under the same name (another generation) must not receive them,
        // even when the deliverer saw neither the delete nor the disable.
        let f = try Fixture()
        try f.saveWebhook("again", url: "https://new.example.com/in", generation: 22)
        try f.saveWebhook("same", url: "https://same.example.com/in", generation: 7)
        try f.saveWebhook("old", url: "https://old.example.com/in")   // from before generations: 0
        try f.enqueue("evt_g", labels: ["again", "same", "old"], generations: [21, 7, 0])
        // The same label's current life, looked up right after its earlier one (the scheduler
        // remembers lookups per label: the generation is part of what it remembers them by).
        try f.enqueue("evt_h", labels: ["again"], generations: [22])
        let t = FakeTransport { _, _ in (FakeTransport.status(200), 0) }
        _ = try f.run(t) { f.status.dropped == 1 && f.status.delivered == 3 }
        #expect(t.requests.map(\.url).sorted() == ["https://new.example.com/in", "https://old.example.com/in", "https://same.example.com/in"])
    }

    @Test func waitingRetriesAreDroppedWhenTheInstanceIsDeleted() throws {
        let f = try Fixture()
        try f.saveWebhook("default", url: "https://hooks.example.com/in")
        try f.enqueue("evt_w", labels: ["default"])
        let t = FakeTransport { _, _ in (FakeTransport.status(503), 0) }
        var config = Deliverer.Configuration(concurrency: 2, retry: RetryPolicy(waits: [3600]), timeout: 2)
        config.pollInterval = 0.02
        let deleted = LockedBox(false)
        _ = try f.run(t, config) {
            if f.status.retrying == 1 && !deleted.get() {
                try? f.store.write { _ in (LogRecord.instanceDeleted(account: "acme", name: "shop"), ()) }
                deleted.set(true)
            }
            return f.status.dropped == 1
        }
        #expect(t.requests.count == 1 && f.status.retrying == 0)
    }

    @Test func aStuckEndpointHoldsOnlyItsShareAndOthersGoOn() throws {
        let f = try Fixture()
        try f.saveWebhook("stuck", url: "https://stuck.example.com/in")
        try f.saveWebhook("fine", url: "https://fine.example.com/in")
        for k in 0..<10 { try f.enqueue("evt_s\(k)", labels: ["stuck"]) }
        for k in 0..<10 { try f.enqueue("evt_f\(k)", labels: ["fine"]) }
        let t = FakeTransport { r, _ in
            r.url.contains("stuck") ? (.failure(.timeout), 1.0) : (FakeTransport.status(200), 0.01)
        }
        let config = Deliverer.Configuration(concurrency: 6, perEndpoint: 2, retry: RetryPolicy(waits: [30]), timeout: 1)
        let started = Date()
        let fineDone = LockedBox<Date?>(nil)
        _ = try f.run(t, config) {
            if fineDone.get() == nil && f.status.delivered == 10 { fineDone.set(Date()) }
            return Date().timeIntervalSince(started) > 3.5
        }
        #expect(fineDone.get().map { $0.timeIntervalSince(started) < 1 } == true, "the healthy endpoint did not wait for the stuck one")
        #expect(t.concurrent.get().max["stuck.example.com"] == 2)
        // Two rounds of two timeouts, then paused until its next retry (30 s): its other eight
        // deliveries wait untried instead of each failing in turn.
        #expect(t.requests.filter { $0.url.contains("stuck") }.count == 4)
        #expect(f.status.retrying == 4 && f.status.queued == 6)
    }

    /// The starvation of issue 12: with a large backlog, each pass over the queue looked at
    /// every due delivery, a stuck endpoint's thousands included, so the healthy endpoint got a
    /// few deliveries per pass and slowed to a trickle (a tenth of its rate alone in
    /// bench/flow.sh from 24,000 deliveries each). The whole healthy backlog must go while the
    /// stuck endpoint sits in its first pause, having used only its bound of senders.
    @Test func aStuckEndpointsBacklogDoesNotStarveTheOthers() throws {
        let f = try Fixture()
        try f.saveWebhook("stuck", url: "https://stuck.example.com/in")
        try f.saveWebhook("fine", url: "https://fine.example.com/in")
        try f.enqueueMany(4000, labels: ["stuck", "fine"])
        let t = FakeTransport { r, _ in
            r.url.contains("stuck") ? (.failure(.timeout), 0.5) : (FakeTransport.status(204), 0)
        }
        let config = Deliverer.Configuration(concurrency: 8, perEndpoint: 4, retry: RetryPolicy(waits: [60]), timeout: 0.5)
        _ = try f.run(t, config) { f.status.delivered == 4000 }
        let stuck = t.requests.filter { $0.url.contains("stuck") }.count
        #expect(stuck <= 8, "two rounds of four, then paused: \(stuck) attempts")
        #expect(t.concurrent.get().max["stuck.example.com"] == 4)
    }

    @Test func aStoppedDelivererLeavesTheRestToTheNext() throws {
        // The queue is the only state: a second deliverer on the same directory (after the
        // first stopped mid-storm) sends what the first did not record.
        let f = try Fixture()
        try f.saveWebhook("default", url: "https://hooks.example.com/in")
        for k in 0..<40 { try f.enqueue("evt_k\(k)", labels: ["default"]) }
        let slow = FakeTransport { _, _ in (FakeTransport.status(200), 0.05) }
        _ = try f.run(slow) { f.status.delivered >= 5 }
        let fast = FakeTransport { _, _ in (FakeTransport.status(200), 0) }
        _ = try f.run(fast) { f.queue.read { $0.pending.isEmpty } }
        let ids = Set((slow.requests + fast.requests).compactMap { $0.header("webhook-id") })
        #expect(ids.count == 40)
    }
}
