import Logging
import RyzeCore
import RyzeHTTP
#if canImport(Glibc)
import Glibc
#endif

/// What sends one request: an `HTTPClient` per sender thread, or a test's fake.
public protocol DeliveryTransport: AnyObject {
    func perform(_ request: HTTPClient.Request) -> Result<HTTPClient.Response, HTTPClient.Failure>
}

extension HTTPClient: DeliveryTransport {}

/// `ryze-events deliver` (SPEC §6.3): takes due deliveries from the queue and POSTs them.
///
/// Threads:
/// - the scheduler (the thread that calls `run`) follows the queue and the configuration,
///   drops deliveries whose label or instance went away, and hands due deliveries to the
///   senders, earliest first, within the bounds: at most `concurrency` attempts in flight, at
///   most `perEndpoint` to one endpoint, none to a paused endpoint (`EndpointTable`);
/// - `concurrency` sender threads, each with its own transport (libcurl handle), make one
///   attempt at a time and record its outcome in the queue (their writes share `fdatasync`s
///   through the queue's group commit).
///
/// `monitor` guards `jobs`, `inFlight`, `held`, `endpoints`, `wake`, `stopping`, `fatal` and
/// `liveSenders`. It is a leaf: no store is read or written while it is held.
///
/// A delivery is in `inFlight` from its hand-off until its outcome is in the queue's state (the
/// queue applies a record before `write` returns), so the scheduler never hands it out twice.
/// An attempt whose outcome could not be written is not recorded: the delivery stays due and is
/// sent again after `holdSeconds` (at least once, SPEC §6.3).
public final class Deliverer: @unchecked Sendable {
    public static let version = "0.1.0"

    public typealias MediaStripper = @Sendable ([UInt8]) -> [UInt8]

    public struct Configuration: Sendable {
        public var concurrency: Int
        public var perEndpoint: Int
        public var retry: RetryPolicy
        /// Seconds for a whole attempt.
        public var timeout: Double
        public var allowPrivateTargets: Bool
        /// Failed attempts in a row after which an endpoint is paused until its next due retry.
        public var pauseAfterFailures: Int
        /// Longest sleep of the scheduler when nothing wakes it: the most a newly queued
        /// delivery waits before it is seen.
        public var pollInterval: Double
        /// Shortest time between two passes over the queue while work keeps finishing.
        public var minScanInterval: Double

        public init(concurrency: Int = 16, perEndpoint: Int = 4, retry: RetryPolicy = RetryPolicy.parse(RetryPolicy.defaultSchedule)!,
                    timeout: Double = 15, allowPrivateTargets: Bool = false, pauseAfterFailures: Int = 3,
                    pollInterval: Double = 0.05, minScanInterval: Double = 0.01) {
            self.concurrency = concurrency
            self.perEndpoint = perEndpoint
            self.retry = retry
            self.timeout = timeout
            self.allowPrivateTargets = allowPrivateTargets
            self.pauseAfterFailures = pauseAfterFailures
            self.pollInterval = pollInterval
            self.minScanInterval = minScanInterval
        }
    }

    public enum StopReason: Equatable, Sendable {
        /// `stop()` was called (SIGTERM, SIGINT).
        case requested
        /// The queue cannot be written any more (a failed `fdatasync`): a fresh process must replay it.
        case queueUnwritable(String)
    }

    let configuration: Configuration
    let queue: QueueStore
    /// The configuration: the data directory's log, or PostgreSQL (`--store`).
    let store: any StateStore
    let secrets: SecretBox
    let resolver: TargetResolver
    let stripMedia: MediaStripper
    let makeTransport: @Sendable () -> any DeliveryTransport
    let clock: WallClock
    let logger: Logger
    /// How long a delivery whose outcome could not be written waits before it is sent again.
    let holdSeconds: Double = 5

    private let monitor = Monitor()
    private struct Job {
        let delivery: DeliveryQueue.Delivery
        let target: WebhookTarget
    }
    private var jobs: [Job] = []
    private var inFlight: Set<DeliveryID> = []
    /// Deliveries not to hand out before a monotonic time (their outcome could not be recorded).
    private var held: [DeliveryID: Double] = [:]
    private var endpoints: EndpointTable
    private var wake = false
    private var stopping = false
    private var fatal: String?
    private var liveSenders = 0

    public init(configuration: Configuration, queue: QueueStore, store: any StateStore, secrets: SecretBox,
                stripMedia: @escaping MediaStripper, clock: WallClock = .system, logger: Logger = Logger(label: "ryze.deliver"),
                resolver: TargetResolver? = nil,
                makeTransport: @escaping @Sendable () -> any DeliveryTransport = { HTTPClient(maxResponseBody: 0) }) {
        self.configuration = configuration
        self.queue = queue
        self.store = store
        self.secrets = secrets
        self.stripMedia = stripMedia
        self.clock = clock
        self.logger = logger
        self.resolver = resolver ?? TargetResolver(allowPrivate: configuration.allowPrivateTargets)
        self.makeTransport = makeTransport
        endpoints = EndpointTable(perEndpoint: configuration.perEndpoint, pauseAfter: configuration.pauseAfterFailures)
    }

    /// Asks `run` to return: no new attempt starts; attempts in flight finish (each within the
    /// timeout) and are recorded. Safe from any thread.
    public func stop() {
        monitor.withLock {
            stopping = true
            monitor.broadcast()
        }
    }

    /// Schedules and sends until `stop()` (or until the queue becomes unwritable). Returns once
    /// the senders have finished their attempts, or after `timeout + 5` seconds, whichever
    /// comes first: an attempt still running then was not recorded and will be made again.
    public func run() -> StopReason {
        queue.counters.claim(pid: getpid())
        defer { queue.counters.release(pid: getpid()) }
        monitor.withLock { liveSenders = configuration.concurrency }
        for _ in 0..<configuration.concurrency {
            let transportFactory = makeTransport
            startThread { [self] in senderLoop(transportFactory()) }
        }
        schedule()
        let deadline = monotonicSeconds() + configuration.timeout + 5
        return monitor.withLock {
            // Hand-offs nobody started are simply not made now; they stay due in the queue.
            for job in jobs {
                inFlight.remove(job.delivery.id)
                endpoints.finished(job.target.endpoint, .noRequest)
            }
            jobs.removeAll()
            monitor.broadcast()
            while liveSenders > 0 {
                let left = deadline - monotonicSeconds()
                if left <= 0 {
                    logger.warning("stopping with attempts still in flight; they were not recorded and will be made again",
                                   metadata: ["in_flight": "\(inFlight.count)"])
                    break
                }
                monitor.wait(seconds: left)
            }
            return fatal.map(StopReason.queueUnwritable) ?? .requested
        }
    }

    // MARK: scheduler

    private func schedule() {
        var lastQueueVersion = -1
        var lastConfigVersion = -1
        var knownNextDue: UInt64?
        var lastScan = 0.0
        var lastFullScan = 0.0
        var lastRefreshError = -1000.0
        while true {
            let stop = monitor.withLock { stopping }
            if stop { return }

            do {
                try queue.refresh()
                try store.refresh()
            } catch {
                if monotonicSeconds() - lastRefreshError > 10 {
                    logger.error("cannot follow the queue or the configuration; retrying", metadata: ["error": "\(error)"])
                    lastRefreshError = monotonicSeconds()
                }
                sleepUnlessWoken(configuration.pollInterval * 10)
                continue
            }
            let queueVersion = queue.read { $0.recordCount }
            let configVersion = store.read { $0.recordCount }
            let now = clock.nowMicroseconds()
            let mono = monotonicSeconds()
            let woken = monitor.withLock { () -> Bool in
                defer { wake = false }
                return wake
            }
            let configChanged = configVersion != lastConfigVersion
            let needed = woken || configChanged || queueVersion != lastQueueVersion
                || knownNextDue.map { $0 <= now } ?? false || mono - lastFullScan >= 1
            if needed {
                if mono - lastScan < configuration.minScanInterval {
                    sleepUnlessWoken(configuration.minScanInterval - (mono - lastScan))
                    monitor.withLock { wake = wake || woken }
                    continue
                }
                lastScan = mono
                lastFullScan = mono
                lastQueueVersion = queueVersion
                lastConfigVersion = configVersion
                knownNextDue = scan(now: now, sweep: configChanged)
            }
            var sleep = configuration.pollInterval
            if let next = knownNextDue { sleep = min(sleep, Double(next > now ? next - now : 0) / 1e6) }
            sleepUnlessWoken(sleep)
        }
    }

    private func sleepUnlessWoken(_ seconds: Double) {
        monitor.withLock {
            if !wake && !stopping { monitor.wait(seconds: seconds) }
        }
    }

    /// One pass: hands out what is due and may start, drops what may never be sent (every
    /// pending delivery when `sweep`, the due ones otherwise). Returns when to look again for
    /// due work (the earliest due time of what is not due, or the end of a pause).
    private func scan(now: UInt64, sweep: Bool) -> UInt64? {
        let (skip, heldIDs) = monitor.withLock { () -> (Set<DeliveryID>, Set<DeliveryID>) in
            let mono = monotonicSeconds()
            held = held.filter { $0.value > mono }
            return (inFlight, Set(held.keys))
        }
        let (due, nextDue) = queue.read { $0.due(at: now, where: { !skip.contains($0.id) && !heldIDs.contains($0.id) }) }
        let others: [DeliveryQueue.Delivery] = sweep ? queue.read { q in q.pending.values.filter { $0.nextDue > now && !skip.contains($0.id) } } : []

        var drops: [(id: DeliveryID, reason: String, delivery: DeliveryQueue.Delivery)] = []
        var sendable: [(DeliveryQueue.Delivery, WebhookTarget)] = []
        store.read { state in
            for d in due {
                switch WebhookTarget.lookup(d, in: state) {
                case .send(let t): sendable.append((d, t))
                case .drop(let reason): drops.append((d.id, reason, d))
                }
            }
            for d in others {
                if case .drop(let reason) = WebhookTarget.lookup(d, in: state) { drops.append((d.id, reason, d)) }
            }
        }
        if !drops.isEmpty { recordDrops(drops) }

        var wakeAt = nextDue
        monitor.withLock {
            var handed = 0
            for (d, t) in sendable {
                guard inFlight.count < configuration.concurrency else { break }
                guard endpoints.mayStart(t.endpoint, now: now) else {
                    if let until = endpoints.pausedUntil(t.endpoint, now: now) { wakeAt = min(wakeAt ?? until, until) }
                    continue
                }
                inFlight.insert(d.id)
                endpoints.started(t.endpoint)
                jobs.append(Job(delivery: d, target: t))
                handed += 1
            }
            if handed > 0 { monitor.broadcast() }
        }
        return wakeAt
    }

    private func recordDrops(_ drops: [(id: DeliveryID, reason: String, delivery: DeliveryQueue.Delivery)]) {
        do {
            let n = try queue.drop(drops.map { ($0.id, $0.reason) })
            queue.counters.countDropped(n)
            for d in drops {
                logger.info("delivery dropped", metadata: [
                    "instance": "\(d.delivery.event.instance)", "label": "\(d.delivery.label.name)",
                    "event_id": "\(d.delivery.event.id)", "delivery": "\(d.id)", "reason": "\(d.reason)",
                ])
            }
        } catch {
            noteWriteFailure(error, what: "dropped deliveries")
        }
    }

    // MARK: senders

    private func senderLoop(_ transport: any DeliveryTransport) {
        while let job = nextJob() {
            queue.counters.attemptStarted()
            let (outcome, attempt) = attempt(job, transport)
            queue.counters.attemptEnded()
            finish(job, outcome, attempt: attempt)
        }
        monitor.withLock {
            liveSenders -= 1
            monitor.broadcast()
        }
    }

    /// The next hand-off, or nil once stopping.
    private func nextJob() -> Job? {
        monitor.withLock {
            while true {
                if stopping { return nil }
                if !jobs.isEmpty { return jobs.removeFirst() }
                monitor.wait(seconds: nil)
            }
        }
    }

    /// What an attempt came to, and facts for its log line.
    struct AttemptResult {
        var outcome: QueueStore.Outcome
        var status: Int?
        var error: String?
        var milliseconds: Int
        var requestMade: Bool
    }

    private func attempt(_ job: Job, _ transport: any DeliveryTransport) -> (AttemptResult, UInt32) {
        let d = job.delivery
        let attempt = d.attempts + 1
        let started = monotonicSeconds()
        func elapsed() -> Int { Int(((monotonicSeconds() - started) * 1000).rounded()) }
        func failed(_ error: String, status: Int?, retryAfter: Double?, requestMade: Bool) -> AttemptResult {
            let now = clock.nowMicroseconds()
            let outcome: QueueStore.Outcome
            if let wait = configuration.retry.wait(afterAttempt: Int(attempt), retryAfter: retryAfter, random: Double.random(in: 0..<1)) {
                outcome = .retry(error: error, nextDue: now + UInt64(wait * 1e6))
            } else {
                outcome = .dead(error: error)
            }
            return AttemptResult(outcome: outcome, status: status, error: error, milliseconds: elapsed(), requestMade: requestMade)
        }

        let addresses: [IPAddress]
        switch resolver.resolve(job.target.endpoint.host) {
        case .failure(.notAllowed):
            return (AttemptResult(outcome: .refused(error: QueueStore.targetNotAllowed), status: nil, error: QueueStore.targetNotAllowed,
                                  milliseconds: elapsed(), requestMade: false), attempt)
        case .failure(let f):
            return (failed(f.description, status: nil, retryAfter: nil, requestMade: true), attempt)
        case .success(let a):
            addresses = a
        }

        let body = job.target.mediaBase64 ? d.event.envelope : stripMedia(d.event.envelope)
        let timestamp = Int64(clock.nowMicroseconds() / 1_000_000)
        let request: HTTPClient.Request
        do {
            request = try SignedRequest.make(event: d.event, label: d.label, target: job.target, body: body, timestamp: timestamp,
                                             secrets: secrets, timeout: configuration.timeout,
                                             pinnedAddress: addresses.map(\.description).joined(separator: ","))
        } catch {
            return (failed(error.description, status: nil, retryAfter: nil, requestMade: false), attempt)
        }
        switch transport.perform(request) {
        case .success(let response) where (200..<300).contains(response.status):
            return (AttemptResult(outcome: .delivered(status: response.status), status: response.status, error: nil,
                                  milliseconds: elapsed(), requestMade: true), attempt)
        case .success(let response):
            var error = "HTTP \(response.status)"
            if (300..<400).contains(response.status) { error += " (redirects are not followed)" }
            var retryAfter: Double?
            if response.status == 429 || response.status == 503, let value = response.header("retry-after") {
                retryAfter = RetryPolicy.retryAfterSeconds(value, now: Double(clock.nowMicroseconds()) / 1e6)
            }
            return (failed(error, status: response.status, retryAfter: retryAfter, requestMade: true), attempt)
        case .failure(.timeout):
            return (failed("timed out after \(Self.seconds(configuration.timeout)) s", status: nil, retryAfter: nil, requestMade: true), attempt)
        case .failure(.transport(let message)):
            return (failed(message, status: nil, retryAfter: nil, requestMade: true), attempt)
        }
    }

    private func finish(_ job: Job, _ result: AttemptResult, attempt: UInt32) {
        let d = job.delivery
        var recorded = false
        do {
            recorded = try queue.record(result.outcome, for: d.id, attempt: attempt)
        } catch {
            noteWriteFailure(error, what: "the outcome of delivery \(d.id)")
        }
        if recorded {
            switch result.outcome {
            case .delivered: queue.counters.countDelivered()
            case .dropped: queue.counters.countDropped()
            default: break
            }
        }
        log(job, result, attempt: attempt, recorded: recorded)

        let endpointResult: EndpointTable.Result
        switch result.outcome {
        case .delivered: endpointResult = .succeeded
        case .retry(_, let nextDue) where result.requestMade: endpointResult = .failed(nextDue: nextDue)
        case .dead where result.requestMade: endpointResult = .failed(nextDue: nil)
        default: endpointResult = .noRequest
        }
        monitor.withLock {
            inFlight.remove(d.id)
            if !recorded { held[d.id] = monotonicSeconds() + holdSeconds }
            endpoints.finished(job.target.endpoint, endpointResult)
            wake = true
            monitor.broadcast()
        }
    }

    /// One line per attempt (SPEC §6.3): never the url (it may carry a token), the
    /// authorization or the secret.
    private func log(_ job: Job, _ r: AttemptResult, attempt: UInt32, recorded: Bool) {
        let d = job.delivery
        var metadata: Logger.Metadata = [
            "instance": "\(d.event.instance)", "label": "\(d.label.name)", "event_id": "\(d.event.id)", "delivery": "\(d.id)",
            "attempt": "\(attempt)", "endpoint": "\(job.target.endpoint)", "duration_ms": "\(r.milliseconds)",
        ]
        if let status = r.status { metadata["status"] = "\(status)" }
        if let error = r.error { metadata["error"] = "\(error)" }
        switch r.outcome {
        case .delivered: metadata["outcome"] = "delivered"
        case .retry(_, let nextDue):
            metadata["outcome"] = "retry"
            let now = clock.nowMicroseconds()
            metadata["next_in_s"] = "\(Self.seconds(Double(nextDue > now ? nextDue - now : 0) / 1e6))"
        case .dead, .refused: metadata["outcome"] = "dead"
        case .dropped: metadata["outcome"] = "dropped"
        }
        if !recorded { metadata["recorded"] = "false" }
        if case .delivered = r.outcome {
            logger.info("attempt", metadata: metadata)
        } else {
            logger.notice("attempt", metadata: metadata)
        }
    }

    private func noteWriteFailure(_ error: any Error, what: String) {
        if let e = error as? StoreError, case .unwritable = e {
            logger.critical("the queue cannot be written any more; stopping so that a fresh process replays it", metadata: ["error": "\(e)"])
            monitor.withLock {
                if fatal == nil { fatal = e.description }
                stopping = true
                monitor.broadcast()
            }
        } else {
            logger.error("cannot record \(what); it will be attempted again", metadata: ["error": "\(error)"])
        }
    }

    static func seconds(_ s: Double) -> String {
        s == s.rounded() ? String(Int(s)) : String((s * 10).rounded() / 10)
    }
}

/// A detached pthread (the deliverer's senders).
func startThread(_ body: @escaping @Sendable () -> Void) {
    final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    var thread = pthread_t()
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    let rc = pthread_create(&thread, nil, { arg in
        Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
        return nil
    }, box)
    precondition(rc == 0, "pthread_create failed")
    pthread_detach(thread)
}
