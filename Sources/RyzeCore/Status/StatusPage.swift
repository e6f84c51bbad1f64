extension Application {
    /// PHP-FPM-style status of the worker that answers: JSON, or Prometheus text with
    /// `?format=prometheus`, both from the one list of `metrics`. Reachable only when
    /// `--status-path` is set; nginx keeps it local.
    func statusPage(_ request: HTTPRequest) -> HTTPResponse {
        let metrics = statusMetrics()
        if request.queryValue("format") == "prometheus" {
            let pid = workerStatistics.map { String($0.pid) } ?? "0"
            return HTTPResponse(status: .ok, contentType: "text/plain; version=0.0.4", body: Array(StatusMetric.prometheus(metrics, pid: pid).utf8))
        }
        return .json(.ok, StatusMetric.json(metrics))
    }

    private func statusMetrics() -> [StatusMetric] {
        let now = limiter.clock.nowMicroseconds()
        let stats = store.stats
        let w = workerStatistics
        let busy = w?.requestsInFlight ?? 0
        let threads = w?.threads ?? 0
        let started = w?.startedAt ?? now
        // The delivery queue as this worker follows it, and the deliverer's shared counters
        // (with --store: PostgreSQL's figures for the whole deployment).
        let delivery = queue?.status() ?? .zero
        var metrics: [StatusMetric] = [
            .init(json: ["pid"], value: Double(w?.pid ?? 0)),
            .init(json: ["startTime"], value: Double(started / 1_000_000)),
            .init(json: ["uptimeSeconds"], prometheus: "uptime_seconds", .gauge, "Seconds since this worker started.",
                  value: (Double(now - started) / 1_000_000).rounded()),
            .init(json: ["requestsServed"], prometheus: "requests_served", .counter, "Requests this worker has completed.",
                  value: Double(w?.requestsServed ?? 0)),
            .init(json: ["requestsInFlight"], prometheus: "requests_in_flight", .gauge, "Requests this worker is handling now.", value: Double(busy)),
            .init(json: ["threads", "total"], value: Double(threads)),
            .init(json: ["threads", "busy"], prometheus: "threads_busy", .gauge, "Request threads handling a request.", value: Double(busy)),
            .init(json: ["threads", "idle"], prometheus: "threads_idle", .gauge, "Request threads waiting for one.", value: Double(max(0, threads - busy))),
            .init(json: ["log", "records"], prometheus: "log_records", .gauge, "Records in the log since it began or was last compacted.",
                  value: Double(stats.records)),
            .init(json: ["log", "bytes"], prometheus: "log_bytes", .gauge, "Bytes of the log applied by this worker.", value: Double(stats.bytes)),
            .init(json: ["log", "writable"], prometheus: "log_writable", .gauge, "1 while this worker may write; 0 after a failed fdatasync.",
                  value: stats.writable ? 1 : 0, isBool: true),
            .init(json: ["accounts"], prometheus: "accounts", .gauge, "Accounts, disabled ones included.", value: Double(stats.accounts)),
            .init(json: ["instances"], prometheus: "instances", .gauge, "Instances.", value: Double(stats.instances)),
        ]
        // The one-host table's fill (a shared store, Redis, keeps its buckets elsewhere), then
        // what every store reports.
        if let table = limiter.table {
            metrics += [
                .init(json: ["rateLimit", "slots"], prometheus: "ratelimit_slots", .gauge, "Capacity of the shared rate-limit table.",
                      value: Double(table.capacity)),
                .init(json: ["rateLimit", "liveBuckets"], prometheus: "ratelimit_live_buckets", .gauge, "Rate-limit buckets not yet full again.",
                      value: Double(table.liveEntries(now: now))),
                .init(json: ["rateLimit", "saturated"], prometheus: "ratelimit_saturated_total", .counter,
                      "Requests without a valid token refused because the table was full for their network.", value: Double(table.saturated)),
                .init(json: ["rateLimit", "replaced"], prometheus: "ratelimit_replaced_total", .counter,
                      "Rate-limit slots taken over from a live bucket because a key's window was full.", value: Double(table.replaced)),
            ]
        }
        metrics.append(.init(json: ["rateLimit", "storeFailures"], prometheus: "ratelimit_store_failures_total", .counter,
                             "Requests this worker answered 503 because the rate-limit store could not decide.",
                             value: Double(limiter.store.unavailableCount)))
        metrics += [
            .init(json: ["stream", "failures"], prometheus: "stream_failures_total", .counter,
                  "Published events the WebSocket fan-out did not take, in this worker.", value: Double(streamFailures.load(ordering: .relaxed))),
            .init(json: ["delivery", "queued"], prometheus: "delivery_queued", .gauge, "Webhook deliveries waiting for their first attempt.",
                  value: Double(delivery.queued)),
            .init(json: ["delivery", "inFlight"], prometheus: "delivery_in_flight", .gauge, "Webhook delivery attempts being made now.",
                  value: Double(delivery.inFlight)),
            .init(json: ["delivery", "delivered"], prometheus: "delivery_delivered_total", .counter, "Webhook deliveries answered with a 2xx.",
                  value: Double(delivery.delivered)),
            .init(json: ["delivery", "retrying"], prometheus: "delivery_retrying", .gauge, "Webhook deliveries waiting for a retry after a failed attempt.",
                  value: Double(delivery.retrying)),
            .init(json: ["delivery", "dead"], prometheus: "delivery_dead", .gauge, "Webhook deliveries in the dead-letter queue.",
                  value: Double(delivery.dead)),
            .init(json: ["delivery", "dropped"], prometheus: "delivery_dropped_total", .counter,
                  "Webhook deliveries dropped because their label was disabled or deleted or their instance deleted.", value: Double(delivery.dropped)),
        ]
        return metrics
    }
}

/// One figure of the status page: where it goes in the JSON (a path of keys), and its
/// Prometheus name, kind and help. Either may be absent (the pid is a label in Prometheus).
struct StatusMetric {
    enum Kind: String { case gauge, counter }

    var json: [String]?
    var prometheus: (name: String, kind: Kind, help: String)?
    var value: Double
    var isBool = false

    init(json: [String], value: Double) {
        self.json = json
        self.value = value
    }

    init(json: [String]?, prometheus name: String, _ kind: Kind, _ help: String, value: Double, isBool: Bool = false) {
        self.json = json
        prometheus = (name, kind, help)
        self.value = value
        self.isBool = isBool
    }

    static func json(_ metrics: [StatusMetric]) -> JSONValue {
        var root: [(String, JSONValue)] = []
        for m in metrics {
            guard let path = m.json else { continue }
            insert(m.isBool ? .bool(m.value != 0) : .number(m.value), at: path[...], into: &root)
        }
        return .object(root)
    }

    /// Keeps the order in which keys first appear.
    private static func insert(_ value: JSONValue, at path: ArraySlice<String>, into members: inout [(String, JSONValue)]) {
        guard let key = path.first else { return }
        if path.count == 1 {
            members.append((key, value))
            return
        }
        if let i = members.firstIndex(where: { $0.0 == key }), case .object(var inner) = members[i].1 {
            insert(value, at: path.dropFirst(), into: &inner)
            members[i].1 = .object(inner)
        } else {
            var inner: [(String, JSONValue)] = []
            insert(value, at: path.dropFirst(), into: &inner)
            members.append((key, .object(inner)))
        }
    }

    static func prometheus(_ metrics: [StatusMetric], pid: String) -> String {
        var text = ""
        for m in metrics {
            guard let p = m.prometheus else { continue }
            let name = "ryze_events_" + p.name
            let value = m.value == m.value.rounded() ? String(Int64(m.value)) : String(m.value)
            text += "# HELP \(name) \(p.help)\n# TYPE \(name) \(p.kind.rawValue)\n\(name){pid=\"\(pid)\"} \(value)\n"
        }
        return text
    }
}
