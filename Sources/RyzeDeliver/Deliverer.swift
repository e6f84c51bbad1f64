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
///   keeps the pending deliveries in a `DispatchIndex` (by endpoint and due time, updated from
///   the queue's change journal: O(changes), not O(backlog), per pass), drops deliveries whose
///   label or instance went away, and hands due deliveries to the senders within the bounds:
///   at most `concurrency` attempts in flight, at most `perEndpoint` to one endpoint, none to a
///   paused endpoint;
/// - `concurrency` sender threads, each with its own transport (libcurl handle, whose
///   connections stay alive between its requests), make one attempt at a time and hand its
///   outcome to the recorder, then take the next hand-off at once;
/// - the recorder writes every outcome handed to it since its last write in one record (one
///   append, one `fdatasync`), then logs them: the disk's latency is paid once per batch, and
///   never by a sender between two requests.
///
/// A sender whose attempt is over takes its next delivery from the index itself when the
/// scheduler has handed none out (`takeNext`); the scheduler hands out what becomes due or
/// newly queued while senders wait.
///
/// `monitor` guards `jobs`, `active`, `inFlight`, `outcomes`, `pendingDrops`, `finishedIDs`, `index`, `wake`,
/// `stopping`, `fatal`, `liveSenders` and `recorderLive`. It is a leaf: no store is read or
/// written while it is held. `held` and the scheduler's own variables belong to the scheduler
/// thread.
///
/// A delivery is in `inFlight` from its hand-off until its outcome is in the queue's state (the
/// queue applies a record before `write` returns), so the scheduler never hands it out twice;
/// while in flight it is not in the index, and the journal's news of it is ignored: the
/// recorder puts it in `finishedIDs` once written, and the scheduler reads it from the queue
/// again then. `active` counts the hand-offs whose request is not over (at most `concurrency`);
/// the others in `inFlight` wait for the recorder (at most `maxUnrecorded`).
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
        /// Shortest time between two readings of every pending delivery after the
        /// configuration changed (to drop those of labels that went away, and file the others
        /// under their endpoints as the configuration now says). Each attempt checks its own
        /// label's configuration just before it starts, whatever this is.
        public var minSweepInterval: Double

        public init(concurrency: Int = 16, perEndpoint: Int = 4, retry: RetryPolicy = RetryPolicy.parse(RetryPolicy.defaultSchedule)!,
                    timeout: Double = 15, allowPrivateTargets: Bool = false, pauseAfterFailures: Int = 3,
                    pollInterval: Double = 0.05, minSweepInterval: Double = 1) {
            self.concurrency = concurrency
            self.perEndpoint = perEndpoint
            self.retry = retry
            self.timeout = timeout
            self.allowPrivateTargets = allowPrivateTargets
            self.pauseAfterFailures = pauseAfterFailures
            self.pollInterval = pollInterval
            self.minSweepInterval = minSweepInterval
        }
    }

    public enum StopReason: Equatable, Sendable {
        /// `stop()` was called (SIGTERM, SIGINT).
        case requested
        /// The queue cannot be written any more (a failed `fdatasync`): a fresh process must replay it.
        case queueUnwritable(String)
    }

    let configuration: Configuration
    /// The data directory's queue, or PostgreSQL's shared one (`--store`): the same scheduling
    /// either way.
    let queue: any DeliverySource
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
    private var jobsHead = 0
    private var active = 0
    private var inFlight: Set<DeliveryID> = []
    /// Attempts over, for the recorder.
    private struct Finished {
        let job: Job
        let result: AttemptResult
        let attempt: UInt32
    }
    private var outcomes: [Finished] = []
    /// Deliveries a sender found it must drop, for the scheduler to record.
    private var pendingDrops: [(id: DeliveryID, reason: String, delivery: DeliveryQueue.Delivery)] = []
    private var recorderLive = false
    /// Attempts over but not yet recorded at most: beyond it no new attempt starts (a disk that
    /// cannot keep up slows the senders down instead of piling up outcomes).
    private var maxUnrecorded: Int { max(64, 4 * configuration.concurrency) }
    /// Deliveries whose attempt is over, to be read from the queue again; true when the
    /// outcome could not be recorded (the delivery is held back `holdSeconds`).
    private var finishedIDs: [(id: DeliveryID, unrecorded: Bool)] = []
    private var index: DispatchIndex
    private var wake = false
    private var stopping = false
    private var fatal: String?
    private var liveSenders = 0
    /// Scheduler thread only: deliveries not to hand out before a wall-clock time (Unix µs),
    /// their outcome could not be recorded.
    private var held: [DeliveryID: UInt64] = [:]

    public init(configuration: Configuration, queue: any DeliverySource, store: any StateStore, secrets: SecretBox,
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
        index = DispatchIndex(perEndpoint: configuration.perEndpoint, pauseAfter: configuration.pauseAfterFailures)
    }

    /// Asks `run` to return: no new attempt starts; attempts in flight finish (each within the
    /// timeout) and are recorded. Safe from any thread.
    public func stop() {
        monitor.withLock {
            stopping = true
            monitor.broadcast(.scheduler)
            monitor.broadcast(.senders)
            monitor.broadcast(.recorder)
        }
    }

    /// Schedules and sends until `stop()` (or until the queue becomes unwritable). Returns once
    /// the senders have finished their attempts, or after `timeout + 5` seconds, whichever
    /// comes first: an attempt still running then was not recorded and will be made again.
    public func run() -> StopReason {
        queue.counters.claim(pid: getpid())
        defer { queue.counters.release(pid: getpid()) }
        monitor.withLock {
            liveSenders = configuration.concurrency
            recorderLive = true
        }
        for _ in 0..<configuration.concurrency {
            let transportFactory = makeTransport
            startThread { [self] in senderLoop(transportFactory()) }
        }
        startThread { [self] in recorderLoop() }
        schedule()
        let deadline = monotonicSeconds() + configuration.timeout + 5
        let (reason, clean) = monitor.withLock { () -> (StopReason, Bool) in
            // Hand-offs nobody started are simply not made now; they stay due in the queue.
            for job in jobs[jobsHead...] {
                inFlight.remove(job.delivery.id)
                active -= 1
                index.finished(job.target.endpoint, .noRequest)
            }
            jobs.removeAll()
            jobsHead = 0
            monitor.broadcast(.senders)
            monitor.broadcast(.recorder)
            while liveSenders > 0 || recorderLive {
                let left = deadline - monotonicSeconds()
                if left <= 0 {
                    logger.warning("stopping with attempts still in flight; they were not recorded and will be made again",
                                   metadata: ["in_flight": "\(inFlight.count)"])
                    break
                }
                monitor.wait(.scheduler, seconds: left)
            }
            return (fatal.map(StopReason.queueUnwritable) ?? .requested, liveSenders == 0 && !recorderLive)
        }
        // Only once no attempt is running: a shared queue's leases go back then, so that the
        // deliveries held here are taken up by other deliverers at once.
        if clean { queue.close() }
        return reason
    }

    // MARK: scheduler

    /// What the scheduler knows of the queue and the configuration between passes.
    private struct Follow {
        /// The queue's generation and journal position the index has caught up with (nil:
        /// read the whole queue).
        var generation: UInt64 = 0
        var cursor: Int?
        var configVersion = -1
        var targets = TargetCache()
        /// The configuration changed since every pending delivery was last looked up.
        var sweepDue = false
        var lastSweep = -Double.infinity
        var lastRefreshError = -Double.infinity
    }

    private func schedule() {
        var follow = Follow()
        while true {
            let stop = monitor.withLock { stopping }
            if stop { return }

            do {
                // The queue first: a delivery read from it has its label's configuration in
                // the store read after (a webhook is saved before an event is queued for it).
                try queue.refresh()
                try store.refresh()
            } catch {
                if monotonicSeconds() - follow.lastRefreshError > 10 {
                    logger.error("cannot follow the queue or the configuration; retrying", metadata: ["error": "\(error)"])
                    follow.lastRefreshError = monotonicSeconds()
                }
                sleepUnlessWoken(configuration.pollInterval * 10)
                continue
            }
            monitor.withLock { wake = false }
            catchUp(&follow)
            let again = dispatch(&follow)
            if again { continue }
            let now = clock.nowMicroseconds()
            var sleep = configuration.pollInterval
            // At capacity the index's next time is no reason to wake: what is due waits for a
            // sender, and a sender whose attempt ends takes it itself (waking here for it made
            // the scheduler spin while the senders were busy).
            let next = monitor.withLock { hasRoom ? index.nextTime : nil }
            if let next { sleep = min(sleep, Double(next > now ? next - now : 0) / 1e6) }
            if follow.sweepDue { sleep = min(sleep, max(0, follow.lastSweep + configuration.minSweepInterval - monotonicSeconds())) }
            if sleep > 0 { sleepUnlessWoken(sleep) }
        }
    }

    /// With the monitor held: whether another attempt may start.
    private var hasRoom: Bool { active < configuration.concurrency && inFlight.count - active < maxUnrecorded }

    private func sleepUnlessWoken(_ seconds: Double) {
        monitor.withLock {
            if !wake && !stopping { monitor.wait(.scheduler, seconds: seconds) }
        }
    }

    /// Brings the index up to date with the queue: the deliveries the journal says changed and
    /// those whose attempt finished, or every pending one (at start, after the queue was
    /// replayed anew, or for a sweep after the configuration changed).
    private func catchUp(_ follow: inout Follow) {
        let configVersion = store.read { $0.recordCount }
        if configVersion != follow.configVersion {
            follow.configVersion = configVersion
            follow.targets.removeAll()
            follow.sweepDue = true
        }
        let mono = monotonicSeconds()
        let sweep = follow.cursor == nil || (follow.sweepDue && mono - follow.lastSweep >= configuration.minSweepInterval)
        let (skip, finished) = monitor.withLock { () -> (Set<DeliveryID>, [(id: DeliveryID, unrecorded: Bool)]) in
            defer { finishedIDs.removeAll() }
            return (inFlight, finishedIDs)
        }
        let now = clock.nowMicroseconds()
        for f in finished where f.unrecorded { held[f.id] = now + UInt64(holdSeconds * 1e6) }
        if !held.isEmpty { held = held.filter { $0.value > now } }

        // Read outside the monitor: the queue's state, then the configuration.
        var whole = false
        var changed: [(id: DeliveryID, delivery: DeliveryQueue.Delivery?)] = []
        queue.read { q in
            var ids: ArraySlice<DeliveryID>?
            if !sweep, let cursor = follow.cursor, follow.generation == q.generation { ids = q.changedIDs(since: cursor) }
            // Each delivery once: the journal names one as often as it changed, and a finished
            // attempt's delivery is in the journal too (or in the whole queue).
            var seen = Set<DeliveryID>()
            if let ids {
                for id in ids where !skip.contains(id) && seen.insert(id).inserted { changed.append((id, q.pending[id])) }
            } else {
                whole = true
                for d in q.pending.values where !skip.contains(d.id) {
                    seen.insert(d.id)
                    changed.append((d.id, d))
                }
            }
            for f in finished where seen.insert(f.id).inserted { changed.append((f.id, q.pending[f.id])) }
            follow.generation = q.generation
            follow.cursor = q.changeCursor
        }
        if whole {
            follow.sweepDue = false
            follow.lastSweep = mono
        }
        var drops: [(id: DeliveryID, reason: String, delivery: DeliveryQueue.Delivery)] = []
        var filed: [(DeliveryQueue.Delivery, WebhookTarget)] = []
        var gone: [DeliveryID] = []
        store.read { state in
            for (id, delivery) in changed {
                guard let d = delivery else {
                    gone.append(id)
                    continue
                }
                switch follow.targets.lookup(d, in: state) {
                case .send(let t): filed.append((d, t))
                case .drop(let reason): drops.append((id, reason, d))
                }
            }
        }
        monitor.withLock {
            if whole { index.removeAll() }
            for id in gone { index.remove(id) }
            for (id, _, _) in drops { index.remove(id) }
            for (d, t) in filed where !inFlight.contains(d.id) {
                index.upsert(d, target: t, due: max(d.nextDue, held[d.id] ?? 0))
            }
        }
        if !drops.isEmpty, !recordDrops(drops) { follow.sweepDue = true }
    }

    /// Hands out what may start now, each checked against its label's configuration as it is
    /// now. True when some went back to the index (their endpoint changed): look again at once.
    private func dispatch(_ follow: inout Follow) -> Bool {
        let now = clock.nowMicroseconds()
        let candidates = monitor.withLock { () -> [DispatchIndex.Entry] in
            var out: [DispatchIndex.Entry] = []
            while hasRoom, let e = index.take(now: now) {
                inFlight.insert(e.delivery.id)
                active += 1
                out.append(e)
            }
            return out
        }
        let sendersDrops = monitor.withLock { () -> [(id: DeliveryID, reason: String, delivery: DeliveryQueue.Delivery)] in
            defer { pendingDrops.removeAll() }
            return pendingDrops
        }
        if !sendersDrops.isEmpty, !recordDrops(sendersDrops) { follow.sweepDue = true }
        guard !candidates.isEmpty else { return false }
        let lookups = store.read { state in candidates.map { follow.targets.lookup($0.delivery, in: state) } }
        var drops: [(id: DeliveryID, reason: String, delivery: DeliveryQueue.Delivery)] = []
        var refiled = false
        monitor.withLock {
            for (e, lookup) in zip(candidates, lookups) {
                switch lookup {
                case .send(let t) where t.endpoint == e.target.endpoint:
                    jobs.append(Job(delivery: e.delivery, target: t))
                    monitor.signal(.senders)
                case .send(let t):
                    inFlight.remove(e.delivery.id)
                    active -= 1
                    index.finished(e.target.endpoint, .noRequest)
                    index.upsert(e.delivery, target: t, due: e.due)
                    refiled = true
                case .drop(let reason):
                    inFlight.remove(e.delivery.id)
                    active -= 1
                    index.finished(e.target.endpoint, .noRequest)
                    drops.append((e.delivery.id, reason, e.delivery))
                }
            }
        }
        if !drops.isEmpty, !recordDrops(drops) { follow.sweepDue = true }
        return refiled
    }

    /// False when the drops could not be written, or some turned out not to be drops (they are
    /// looked at again at the next sweep).
    private func recordDrops(_ found: [(id: DeliveryID, reason: String, delivery: DeliveryQueue.Delivery)]) -> Bool {
        do {
            // A drop is final, and with a store followed from other hosts the configuration read
            // may lag the queue: a label saved on another host a moment before its first event
            // was published there must not read as deleted. So drops are decided on a state
            // brought up to date now (one round trip with PostgreSQL; the log's refresh).
            try store.synchronize()
            let drops = store.read { state in
                found.compactMap { d -> (id: DeliveryID, reason: String, delivery: DeliveryQueue.Delivery)? in
                    guard case .drop(let reason) = WebhookTarget.lookup(d.delivery, in: state) else { return nil }
                    return (d.id, reason, d.delivery)
                }
            }
            let n = try queue.drop(drops.map { ($0.id, $0.reason) })
            queue.counters.countDropped(n)
            for d in drops {
                logger.info("delivery dropped", metadata: [
                    "instance": "\(d.delivery.event.instance)", "label": "\(d.delivery.label.name)",
                    "event_id": "\(d.delivery.event.id)", "delivery": "\(d.id)", "reason": "\(d.reason)",
                ])
            }
            return drops.count == found.count
        } catch {
            noteWriteFailure(error, what: "dropped deliveries")
            return false
        }
    }

    // MARK: senders

    private func senderLoop(_ transport: any DeliveryTransport) {
        var job = nextJob()
        while let current = job {
            let job0 = current
            queue.counters.attemptStarted()
            let (result, attempt) = attempt(job0, transport)
            queue.counters.attemptEnded()
            let endpointResult: EndpointTable.Result
            switch result.outcome {
            case .delivered: endpointResult = .succeeded
            case .retry(_, let nextDue) where result.requestMade: endpointResult = .failed(nextDue: nextDue)
            case .dead where result.requestMade: endpointResult = .failed(nextDue: nil)
            default: endpointResult = .noRequest
            }
            let next = monitor.withLock { () -> Next in
                active -= 1
                index.finished(job0.target.endpoint, endpointResult)
                outcomes.append(Finished(job: job0, result: result, attempt: attempt))
                monitor.signal(.recorder)
                return takeNext()
            }
            switch next {
            case .job(let j): job = j
            case .candidate(let e): job = check(e)
            case .none: job = nil
            }
            if job == nil { job = nextJob() }
        }
        monitor.withLock {
            liveSenders -= 1
            monitor.broadcast(.scheduler)
            monitor.broadcast(.recorder)
        }
    }

    private enum Next {
        case job(Job)
        /// Taken from the index by the sender itself, to be checked against the configuration.
        case candidate(DispatchIndex.Entry)
        case none
    }

    /// With the monitor held, for a sender whose attempt just ended: a hand-off of the
    /// scheduler's if one waits, else the next delivery the index has (the sender takes it
    /// itself: no round trip through the scheduler per delivery, which cost three thread
    /// switches each), else none.
    private func takeNext() -> Next {
        if stopping { return .none }
        if let j = popJob() { return .job(j) }
        guard hasRoom, let e = index.take(now: clock.nowMicroseconds()) else {
            // This sender goes idle: the scheduler, which may have slept while every sender was
            // busy, must now watch the index's next time again.
            wake = true
            monitor.signal(.scheduler)
            return .none
        }
        inFlight.insert(e.delivery.id)
        active += 1
        return .candidate(e)
    }

    /// A candidate checked against its label's configuration as it is now (outside the
    /// monitor): its job, or nil when it went back to the index (its endpoint changed) or is
    /// to be dropped (the scheduler records that).
    private func check(_ e: DispatchIndex.Entry) -> Job? {
        let lookup = store.read { WebhookTarget.lookup(e.delivery, in: $0) }
        if case .send(let t) = lookup, t.endpoint == e.target.endpoint { return Job(delivery: e.delivery, target: t) }
        monitor.withLock {
            inFlight.remove(e.delivery.id)
            active -= 1
            index.finished(e.target.endpoint, .noRequest)
            switch lookup {
            case .send(let t): index.upsert(e.delivery, target: t, due: e.due)
            case .drop(let reason): pendingDrops.append((e.delivery.id, reason, e.delivery))
            }
            wake = true
            monitor.signal(.scheduler)
        }
        return nil
    }

    /// With the monitor held.
    private func popJob() -> Job? {
        guard jobsHead < jobs.count else { return nil }
        let job = jobs[jobsHead]
        jobsHead += 1
        // Reclaimed once drained, so `jobs` never holds more than one pass's hand-outs.
        if jobsHead == jobs.count {
            jobs.removeAll(keepingCapacity: true)
            jobsHead = 0
        }
        return job
    }

    /// The next hand-off, or nil once stopping.
    private func nextJob() -> Job? {
        monitor.withLock {
            while true {
                if stopping { return nil }
                if let job = popJob() { return job }
                monitor.wait(.senders, seconds: nil)
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
        // A shared queue's lease must outlast the request, or another deliverer could send the
        // same delivery at the same time (SPEC §7: one deliverer at a time). Checked here, after
        // the name lookup, which has no deadline of its own (a silent resolver takes 10-30 s).
        guard queue.mayAttempt(d.id, seconds: configuration.timeout) else {
            return (AttemptResult(outcome: .released, status: nil, error: "lease too short for an attempt", milliseconds: elapsed(), requestMade: false), attempt)
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

    // MARK: recorder

    /// Writes the outcomes the senders hand over, each batch in one record, until stopping and
    /// every sender is gone (their last outcomes are written too).
    private func recorderLoop() {
        while let batch = nextOutcomes() {
            var start = 0
            while start < batch.count {
                let end = min(batch.count, start + QueueStore.maxOutcomesPerRecord)
                record(batch[start..<end])
                start = end
            }
        }
        monitor.withLock {
            recorderLive = false
            monitor.broadcast(.scheduler)
        }
    }

    private func nextOutcomes() -> [Finished]? {
        monitor.withLock {
            while outcomes.isEmpty {
                if stopping && liveSenders == 0 { return nil }
                monitor.wait(.recorder, seconds: nil)
            }
            defer { outcomes.removeAll(keepingCapacity: true) }
            return outcomes
        }
    }

    private func record(_ batch: ArraySlice<Finished>) {
        var recorded = [Bool](repeating: false, count: batch.count)
        do {
            recorded = try queue.record(batch.map { ($0.result.outcome, $0.job.delivery.id, $0.attempt) })
        } catch {
            noteWriteFailure(error, what: batch.count == 1 ? "the outcome of delivery \(batch.first!.job.delivery.id)" : "the outcomes of \(batch.count) attempts")
        }
        for (f, ok) in zip(batch, recorded) {
            if ok {
                switch f.result.outcome {
                case .delivered: queue.counters.countDelivered()
                case .dropped: queue.counters.countDropped()
                default: break
                }
            }
            log(f.job, f.result, attempt: f.attempt, recorded: ok)
        }
        monitor.withLock {
            for (f, ok) in zip(batch, recorded) {
                inFlight.remove(f.job.delivery.id)
                finishedIDs.append((f.job.delivery.id, !ok))
            }
            wake = true
            monitor.signal(.scheduler)
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
        case .released: metadata["outcome"] = "released"
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
                monitor.broadcast(.scheduler)
                monitor.broadcast(.senders)
                monitor.broadcast(.recorder)
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
