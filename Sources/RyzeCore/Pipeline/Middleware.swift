/// One cross-cutting step of answering a request, in the manner of Hummingbird's middleware:
/// it may answer by itself, or call `next` and change what comes back. Steps may not throw: each
/// answers in the contract's envelope itself.
///
/// `next` takes the request back as an argument, and steps pass on the one they were given: a
/// closure that captured the request instead copied it into its context, each of its strings
/// and arrays retained and released again (counted with uprobes on a live worker: 8 of 48
/// `swift_retain`, 8 of 65 `swift_release` and 7 of 30 `swift_bridgeObjectRetain` per GET).
protocol Middleware: Sendable {
    func handle(_ request: HTTPRequest, _ state: inout RequestState, next: (HTTPRequest, inout RequestState) -> HTTPResponse) -> HTTPResponse
}

/// What the steps learn about a request on its way through them.
struct RequestState {
    let match: Router<Endpoint>.Match
    /// The matched route's endpoint, taken out of `match` once: several steps look at it, and
    /// each look into `match` copied its captures.
    let endpoint: Endpoint?
    /// The token from the first source that has one (SPEC §2), and its digest.
    var token: String?
    var digest: TokenDigest?
    /// Who the token belongs to in the current state; nil for no token or an invalid one.
    var principal: State.Principal?
    /// Set when the store could not catch up with the deployment: nothing it holds can be trusted.
    var storeError: StoreError?
    /// The request's `Origin` when it is one the deployment allows (CORS).
    var allowedOrigin: String?

    init(match: Router<Endpoint>.Match) {
        self.match = match
        if case .found(let endpoint, _) = match { self.endpoint = endpoint } else { endpoint = nil }
    }
}

/// Two steps as one: `first`, and `second` as its `next`. The pipeline is these nested, so its
/// order is a type (`Application.Steps`) and every step a concrete, generic-specialized call: the
/// compiler inlines the chain into one function, where an array of `any Middleware` walked by
/// index cost a witness-table call, a closure and a recursion per step (~500 instructions per
/// request). The order is still only what the nesting says: `first` runs first.
///
/// A class, not a struct: the closure handed to `first` captures `second`, and a struct there is
/// copied (every reference in every later step retained and released, per step and request);
/// a class is captured by its reference, which the call already holds.
final class Then<First: Middleware, Second: Middleware>: Middleware {
    let first: First
    let second: Second

    init(first: First, second: Second) {
        self.first = first
        self.second = second
    }

    @inline(__always)
    func handle(_ request: HTTPRequest, _ state: inout RequestState, next: (HTTPRequest, inout RequestState) -> HTTPResponse) -> HTTPResponse {
        first.handle(request, &state) { self.second.handle($0, &$1, next: next) }
    }
}

extension Middleware {
    /// `self`, then `step`: `a.then(b).then(c)` runs a, b, c in that order.
    func then<Next: Middleware>(_ step: Next) -> Then<Self, Next> { Then(first: self, second: step) }
}
