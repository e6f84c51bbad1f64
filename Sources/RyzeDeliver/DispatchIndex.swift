import HeapModule
import RyzeCore

/// The deliverer's index of the pending deliveries it may hand out (those not in flight), so
/// that choosing the next one costs O(log n) however large the backlog (SPEC §6.3; issue 12).
///
/// - Per endpoint, a heap of its deliveries by due time (earliest first, then by number).
/// - Across endpoints, a heap of *armed* endpoints: each endpoint that has a delivery and room
///   for another attempt sits there once, at the time its next attempt may start (its earliest
///   due time, or the end of its pause if later). An endpoint at its in-flight bound is not
///   armed at all, so a stuck endpoint with thousands of due deliveries costs nothing per
///   dispatch: it is armed again when one of its attempts finishes (`finished`).
///
/// Both heaps are lazy: an entry that no longer matches `entries` or `armed` (the delivery was
/// updated, removed or handed out; the endpoint re-armed) is skipped when it comes to the top.
///
/// Not thread-safe: the deliverer's monitor guards it.
struct DispatchIndex {
    /// A delivery that may be handed out, and where it goes (from its label's configuration
    /// when it was indexed; checked again just before the attempt).
    struct Entry {
        var delivery: DeliveryQueue.Delivery
        var target: WebhookTarget
        /// Not before this (Unix µs): the delivery's due time, or later for one held back.
        var due: UInt64
    }

    private struct Item: Comparable {
        let due: UInt64
        let id: DeliveryID
        static func < (a: Item, b: Item) -> Bool { (a.due, a.id) < (b.due, b.id) }
    }

    private struct Armed: Comparable {
        let at: UInt64
        /// Arming order: ties go to the endpoint armed first, and it tells a current entry
        /// from a stale one.
        let order: UInt64
        let endpoint: Endpoint
        static func < (a: Armed, b: Armed) -> Bool { (a.at, a.order) < (b.at, b.order) }
        static func == (a: Armed, b: Armed) -> Bool { a.at == b.at && a.order == b.order }
    }

    private(set) var entries: [DeliveryID: Entry] = [:]
    private var queues: [Endpoint: Heap<Item>] = [:]
    private var ready = Heap<Armed>()
    /// The current `ready` entry of each armed endpoint.
    private var armed: [Endpoint: (at: UInt64, order: UInt64)] = [:]
    private var armings: UInt64 = 0
    private(set) var endpoints: EndpointTable
    /// Heap entries `take` looked at, all told: what hand-outs cost, for tests.
    private(set) var examined = 0

    init(perEndpoint: Int, pauseAfter: Int) {
        endpoints = EndpointTable(perEndpoint: perEndpoint, pauseAfter: pauseAfter)
    }

    var count: Int { entries.count }

    func contains(_ id: DeliveryID) -> Bool { entries[id] != nil }

    /// Adds `delivery`, or moves it to its new due time or endpoint.
    mutating func upsert(_ delivery: DeliveryQueue.Delivery, target: WebhookTarget, due: UInt64) {
        entries[delivery.id] = Entry(delivery: delivery, target: target, due: due)
        queues[target.endpoint, default: Heap()].insert(Item(due: due, id: delivery.id))
        arm(target.endpoint)
    }

    mutating func remove(_ id: DeliveryID) {
        entries[id] = nil
    }

    /// Forgets every delivery (not the endpoints' in-flight counts and pauses).
    mutating func removeAll() {
        entries = [:]
        queues = [:]
        ready = Heap()
        armed = [:]
    }

    /// The next delivery whose attempt may start at `now`, taken out of the index and counted
    /// in flight to its endpoint (`finished` must follow); earliest armed endpoint first.
    mutating func take(now: UInt64) -> Entry? {
        while let top = ready.min, top.at <= now {
            examined += 1
            ready.removeMin()
            guard let current = armed[top.endpoint], current.at == top.at, current.order == top.order else { continue }
            armed[top.endpoint] = nil
            let endpoint = top.endpoint
            guard let head = head(of: endpoint), endpoints.hasRoom(endpoint) else { continue }
            let at = max(head.due, endpoints.pausedUntil(endpoint, now: now) ?? 0)
            if at > now {
                arm(endpoint)
                continue
            }
            queues[endpoint]!.removeMin()
            let entry = entries.removeValue(forKey: head.id)!
            endpoints.started(endpoint)
            arm(endpoint)
            return entry
        }
        return nil
    }

    /// An attempt to `endpoint` that `take` handed out is over.
    mutating func finished(_ endpoint: Endpoint, _ result: EndpointTable.Result) {
        endpoints.finished(endpoint, result)
        arm(endpoint)
    }

    /// When `take` may next have something (nil: not before a change): the earliest armed
    /// time, possibly of a stale entry (an early look costs one pass).
    var nextTime: UInt64? { ready.min?.at }

    /// The earliest current delivery of `endpoint`, dropping stale items off the top.
    private mutating func head(of endpoint: Endpoint) -> Item? {
        while let top = queues[endpoint]?.min {
            if let e = entries[top.id], e.due == top.due, e.target.endpoint == endpoint { return top }
            examined += 1
            queues[endpoint]!.removeMin()
        }
        queues[endpoint] = nil
        return nil
    }

    /// Puts `endpoint` in `ready` at the time its next attempt may start, unless it has no
    /// delivery, no room, or is already there at that time or earlier (then it is looked at
    /// again when that entry comes up).
    private mutating func arm(_ endpoint: Endpoint) {
        guard endpoints.hasRoom(endpoint), let head = head(of: endpoint) else { return }
        let at = max(head.due, endpoints.pausedUntilTime(endpoint))
        if let current = armed[endpoint], current.at <= at { return }
        armings += 1
        armed[endpoint] = (at, armings)
        ready.insert(Armed(at: at, order: armings, endpoint: endpoint))
    }
}
