/// Per endpoint (scheme, host, port): attempts in flight and the run of failures, so that one
/// slow or failing endpoint never holds up the others (SPEC §6.3).
///
/// - At most `perEndpoint` attempts in flight to one endpoint: a receiver that never answers
///   holds that many senders until the timeout, never all of them.
/// - After `pauseAfter` failed attempts in a row, the endpoint is paused until the next due
///   retry of the latest failure: its other deliveries wait (they are not attempted, so they use
///   up no attempt) instead of all failing one after another. A success ends the pause.
///
/// Not thread-safe: part of the deliverer's `DispatchIndex`, which its monitor guards.
struct EndpointTable {
    struct State {
        var inFlight = 0
        var failures = 0
        /// Unix µs; no attempt starts before it.
        var pausedUntil: UInt64 = 0
    }

    let perEndpoint: Int
    let pauseAfter: Int
    private(set) var states: [Endpoint: State] = [:]

    init(perEndpoint: Int, pauseAfter: Int) {
        self.perEndpoint = perEndpoint
        self.pauseAfter = pauseAfter
    }

    /// Whether an attempt to `endpoint` may start at `now`.
    func mayStart(_ endpoint: Endpoint, now: UInt64) -> Bool {
        guard let s = states[endpoint] else { return perEndpoint > 0 }
        return s.inFlight < perEndpoint && s.pausedUntil <= now
    }

    /// Whether `endpoint` has fewer than `perEndpoint` attempts in flight.
    func hasRoom(_ endpoint: Endpoint) -> Bool {
        (states[endpoint]?.inFlight ?? 0) < perEndpoint
    }

    /// The end of the latest pause of `endpoint` (0: never paused, or a success since).
    func pausedUntilTime(_ endpoint: Endpoint) -> UInt64 {
        states[endpoint]?.pausedUntil ?? 0
    }

    /// The end of the pause of `endpoint`, when it is paused at `now`.
    func pausedUntil(_ endpoint: Endpoint, now: UInt64) -> UInt64? {
        guard let s = states[endpoint], s.pausedUntil > now else { return nil }
        return s.pausedUntil
    }

    mutating func started(_ endpoint: Endpoint) {
        states[endpoint, default: State()].inFlight += 1
    }

    enum Result {
        case succeeded
        /// A failed attempt whose retry is due at `nextDue` (nil: it was the last).
        case failed(nextDue: UInt64?)
        /// No request was made (refused target, dropped, outcome not recorded).
        case noRequest
    }

    mutating func finished(_ endpoint: Endpoint, _ result: Result) {
        var s = states[endpoint, default: State()]
        s.inFlight = max(0, s.inFlight - 1)
        switch result {
        case .succeeded:
            s.failures = 0
            s.pausedUntil = 0
        case .failed(let nextDue):
            s.failures += 1
            if s.failures >= pauseAfter, let nextDue { s.pausedUntil = max(s.pausedUntil, nextDue) }
        case .noRequest:
            break
        }
        // Forget endpoints with nothing to remember, so the table stays the size of the trouble.
        states[endpoint] = s.inFlight == 0 && s.failures == 0 ? nil : s
    }
}
