import Foundation
import Testing
@testable import RyzeCore

/// The status page's `delivery` object: the queue this worker follows, and the deliverer's
/// shared counters, in JSON and in Prometheus text from the one list of metrics.
@Suite struct DeliveryStatusPageTests {
    @Test func theDeliveryObjectReadsTheQueueAndTheCounters() throws {
        let dir = TempDirectory()
        let store = try LogStore(directory: dir.path)
        let queue = try QueueStore(directory: dir.path)
        let table = try SharedRateTable(path: dir.path + "/ratelimit.table", capacity: 1024)
        let app = Application(store: store, limiter: RateLimiter(table: table, limits: .init(perToken: 100, createPerToken: 100, perAddress: 100)),
                              configuration: .init(statusPath: "/status"), secrets: nil, queue: queue)
        func status() -> HTTPResponse {
            app.respond(to: fastCGIRequest("GET", "/status"))
        }
        #expect(status().json?["delivery"] == .object([("queued", .number(0)), ("inFlight", .number(0)), ("delivered", .number(0)),
                                                        ("retrying", .number(0)), ("dead", .number(0)), ("dropped", .number(0))]))

        // Another process (the deliverer) queues, fails, kills and counts; this worker sees it all.
        let other = try QueueStore(directory: dir.path)
        for k in 0..<4 {
            try other.enqueue(QueuedEvent(id: "e\(k)", account: "acme", instance: "shop", event: .callUpdate, envelope: Array("{}".utf8),
                                          labels: [.default], queuedAt: 1))
        }
        try other.record(.retry(error: "HTTP 500", nextDue: 5), for: 1, attempt: 1)
        try other.record(.dead(error: "HTTP 500"), for: 2, attempt: 1)
        other.counters.claim(pid: getpid())
        other.counters.attemptStarted()
        other.counters.countDelivered()
        other.counters.countDropped(2)
        #expect(status().json?["delivery"] == .object([("queued", .number(2)), ("inFlight", .number(1)), ("delivered", .number(1)),
                                                        ("retrying", .number(1)), ("dead", .number(1)), ("dropped", .number(2))]))

        let prometheus = app.respond(to: fastCGIRequest("GET", "/status?format=prometheus"))
        let text = String(decoding: prometheus.body, as: UTF8.self)
        for name in ["delivery_queued", "delivery_in_flight", "delivery_retrying", "delivery_dead"] {
            #expect(text.contains("# TYPE ryze_events_\(name) gauge"), "\(name)")
        }
        for name in ["delivery_delivered_total", "delivery_dropped_total"] {
            #expect(text.contains("# TYPE ryze_events_\(name) counter"), "\(name)")
        }
        #expect(text.contains("ryze_events_delivery_dropped_total{pid=\"0\"} 2"))
    }
}
