import Testing
@testable import RyzeCore
@testable import RyzeDeliver

/// `DispatchIndex` alone: which delivery goes next, per endpoint and across endpoints.
@Suite struct DispatchIndexTests {
    static let event = DeliveryQueue.Event(QueuedEvent(id: "evt_1", account: "acme", instance: "shop", event: .messageExchange,
                                                       envelope: [], labels: [WebhookLabel("default")!], queuedAt: 0))

    static func delivery(_ id: DeliveryID, due: UInt64, attempts: UInt32 = 0) -> DeliveryQueue.Delivery {
        DeliveryQueue.Delivery(id: id, event: event, label: WebhookLabel("default")!, attempts: attempts, nextDue: due, lastError: "", deadSince: nil)
    }

    static func target(_ host: String) -> WebhookTarget {
        let url = "https://\(host)/in"
        let config = WebhookConfig(label: WebhookLabel("default")!, enabled: true, url: url)
        let hook = StoredWebhook(config: config, sealedAuthorization: [], sealedSigningSecret: [], keyID: DeploymentKey.ID(bytes: [UInt8](repeating: 1, count: DeploymentKey.ID.byteCount))!)
        return WebhookTarget(url: url, endpoint: Endpoint(url: url)!, mediaBase64: false, webhook: hook)
    }

    static func drain(_ index: inout DispatchIndex, now: UInt64) -> [DeliveryID] {
        var out: [DeliveryID] = []
        while let e = index.take(now: now) { out.append(e.delivery.id) }
        return out
    }

    @Test func dueDeliveriesGoEarliestFirstAcrossEndpoints() {
        var index = DispatchIndex(perEndpoint: 10, pauseAfter: 3)
        let a = Self.target("a.example.com"), b = Self.target("b.example.com")
        index.upsert(Self.delivery(1, due: 30), target: a, due: 30)
        index.upsert(Self.delivery(2, due: 10), target: b, due: 10)
        index.upsert(Self.delivery(3, due: 20), target: a, due: 20)
        index.upsert(Self.delivery(4, due: 99), target: b, due: 99)
        #expect(index.nextTime == 10)
        #expect(Self.drain(&index, now: 50) == [2, 3, 1])
        #expect(index.nextTime == 99 && index.count == 1)
    }

    @Test func anUpdateMovesADeliveryAndARemovalForgetsIt() {
        var index = DispatchIndex(perEndpoint: 10, pauseAfter: 3)
        let a = Self.target("a.example.com"), b = Self.target("b.example.com")
        index.upsert(Self.delivery(1, due: 10), target: a, due: 10)
        index.upsert(Self.delivery(2, due: 20), target: a, due: 20)
        index.upsert(Self.delivery(1, due: 500, attempts: 1), target: a, due: 500)   // failed: retry later
        index.upsert(Self.delivery(2, due: 20), target: b, due: 20)                  // its label's url changed
        index.upsert(Self.delivery(3, due: 5), target: a, due: 5)
        index.remove(3)
        #expect(Self.drain(&index, now: 100).map { $0 } == [2])
        #expect(index.endpoints.states[b.endpoint]?.inFlight == 1 && index.endpoints.states[a.endpoint] == nil)
        #expect(Self.drain(&index, now: 500) == [1])
    }

    /// The starvation this index exists to prevent: an endpoint at its in-flight bound, with a
    /// backlog due long before everything else, must not keep the others from their turn, and
    /// is taken up again as soon as one of its attempts is over.
    @Test func anEndpointAtItsBoundNeverHoldsUpTheOthers() {
        var index = DispatchIndex(perEndpoint: 2, pauseAfter: 3)
        let stuck = Self.target("stuck.example.com"), fine = Self.target("fine.example.com")
        for k in 0..<1000 { index.upsert(Self.delivery(DeliveryID(k), due: UInt64(k)), target: stuck, due: UInt64(k)) }
        for k in 1000..<1010 { index.upsert(Self.delivery(DeliveryID(k), due: 5000), target: fine, due: 5000) }
        let taken = Self.drain(&index, now: 6000)
        #expect(taken == [0, 1] + Array(1000..<1002), "two each: the fine endpoint's bound holds too")
        index.finished(fine.endpoint, .succeeded)
        index.finished(stuck.endpoint, .failed(nextDue: 9000))
        #expect(Self.drain(&index, now: 6000) == [2, 1002], "each back in its turn, earliest first")
    }

    /// What starved healthy endpoints under a large backlog: every pass over the queue looked
    /// at every due delivery, the thousands of a stuck endpoint that could not start included,
    /// so each hand-out cost O(backlog) and a stuck endpoint's backlog slowed the others to a
    /// trickle (0.10 of their rate alone, from 24,000 deliveries each). A hand-out must cost the
    /// same whatever the backlog of an endpoint at its bound.
    @Test func aBlockedBacklogCostsNothingPerHandOut() {
        var index = DispatchIndex(perEndpoint: 16, pauseAfter: 3)
        let stuck = Self.target("stuck.example.com"), fine = Self.target("fine.example.com")
        for k in 0..<20_000 { index.upsert(Self.delivery(DeliveryID(k), due: UInt64(k)), target: stuck, due: UInt64(k)) }
        #expect(Self.drain(&index, now: 1_000_000).count == 16)
        for k in 0..<2_000 {
            let id = DeliveryID(100_000 + k)
            index.upsert(Self.delivery(id, due: 50_000), target: fine, due: 50_000)
            let before = index.examined
            #expect(index.take(now: 1_000_000)?.delivery.id == id)
            #expect(index.examined - before <= 2, "a hand-out looked at \(index.examined - before) entries")
            index.finished(fine.endpoint, .succeeded)
        }
    }

    @Test func aPausedEndpointWaitsUntilItsPauseEnds() {
        var index = DispatchIndex(perEndpoint: 4, pauseAfter: 1)
        let a = Self.target("a.example.com"), b = Self.target("b.example.com")
        index.upsert(Self.delivery(1, due: 0), target: a, due: 0)
        #expect(Self.drain(&index, now: 10) == [1])
        index.finished(a.endpoint, .failed(nextDue: 300))
        index.upsert(Self.delivery(1, due: 300, attempts: 1), target: a, due: 300)
        index.upsert(Self.delivery(2, due: 0), target: a, due: 0)
        index.upsert(Self.delivery(3, due: 50), target: b, due: 50)
        // Paused until 300: its never-tried delivery due at 0 waits; the other endpoint goes.
        #expect(Self.drain(&index, now: 100) == [3])
        #expect(index.nextTime == 300)
        #expect(Self.drain(&index, now: 300) == [2, 1])
    }
}
