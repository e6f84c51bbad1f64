extension Application {
    /// PHP-FPM-style status of the worker that answers: JSON, or Prometheus text with
    /// `?format=prometheus`. Reachable only when `--status-path` is set; nginx keeps it local.
    func statusPage(_ request: HTTPRequest) -> HTTPResponse {
        let now = limiter.clock.nowMicroseconds()
        let stats = store.stats
        let w = workerStatistics
        let busy = w?.requestsInFlight ?? 0
        let threads = w?.threads ?? 0
        let liveBuckets = limiter.table.liveEntries(now: now)
        let values: [(String, String, Double)] = [
            ("requests_served", "Requests this worker has completed.", Double(w?.requestsServed ?? 0)),
            ("requests_in_flight", "Requests this worker is handling now.", Double(busy)),
            ("threads_busy", "Request threads handling a request.", Double(busy)),
            ("threads_idle", "Request threads waiting for one.", Double(max(0, threads - busy))),
            ("log_records", "Records in the log since it began or was last compacted.", Double(stats.records)),
            ("log_bytes", "Bytes of the log applied by this worker.", Double(stats.bytes)),
            ("accounts", "Accounts, disabled ones included.", Double(stats.accounts)),
            ("instances", "Instances.", Double(stats.instances)),
            ("ratelimit_slots", "Capacity of the shared rate-limit table.", Double(limiter.table.capacity)),
            ("ratelimit_live_buckets", "Rate-limit buckets not yet full again.", Double(liveBuckets)),
            ("ratelimit_saturated_total", "Requests without a valid token refused because the table was full for their network.", Double(limiter.table.saturated)),
            ("ratelimit_replaced_total", "Rate-limit slots taken over from a live bucket because a key's window was full.", Double(limiter.table.replaced)),
            ("uptime_seconds", "Seconds since this worker started.", Double(now - (w?.startedAt ?? now)) / 1_000_000),
        ]
        if request.queryValue("format") == "prometheus" {
            var text = ""
            let pid = w.map { String($0.pid) } ?? "0"
            for (name, help, value) in values {
                let metric = "ryze_events_" + name
                text += "# HELP \(metric) \(help)\n# TYPE \(metric) \(name.hasSuffix("_total") || name == "requests_served" ? "counter" : "gauge")\n"
                text += "\(metric){pid=\"\(pid)\"} \(value == value.rounded() ? String(Int64(value)) : String(value))\n"
            }
            return HTTPResponse(status: .ok, contentType: "text/plain; version=0.0.4", body: Array(text.utf8))
        }
        return .json(.ok, .object([
            ("pid", .number(Double(w?.pid ?? 0))),
            ("startTime", .number(Double((w?.startedAt ?? now) / 1_000_000))),
            ("uptimeSeconds", .number((Double(now - (w?.startedAt ?? now)) / 1_000_000).rounded())),
            ("requestsServed", .number(Double(w?.requestsServed ?? 0))),
            ("requestsInFlight", .number(Double(busy))),
            ("threads", .object([("total", .number(Double(threads))), ("busy", .number(Double(busy))), ("idle", .number(Double(max(0, threads - busy))))])),
            ("log", .object([("records", .number(Double(stats.records))), ("bytes", .number(Double(stats.bytes)))])),
            ("accounts", .number(Double(stats.accounts))),
            ("instances", .number(Double(stats.instances))),
            ("rateLimit", .object([("slots", .number(Double(limiter.table.capacity))), ("liveBuckets", .number(Double(liveBuckets))),
                                   ("saturated", .number(Double(limiter.table.saturated))), ("replaced", .number(Double(limiter.table.replaced)))])),
        ]))
    }
}
