/// SPEC §3: charges the request to its bucket, answers 429 when it is empty, and puts the
/// bucket's headers on every answer that comes back, errors included. When a shared store cannot
/// decide, SPEC §7: 503 at once, with the rule's limit, nothing remaining and a retry in 1 second
/// (the store's backoff is shorter), rather than an uncounted answer.
struct RateLimiting: Middleware {
    let limiter: RateLimiter

    func handle(_ request: HTTPRequest, _ state: inout RequestState, next: (HTTPRequest, inout RequestState) -> HTTPResponse) -> HTTPResponse {
        let bucket: RateLimiter.Bucket
        switch (state.principal, state.digest, state.endpoint?.bucket) {
        case (_, _, .anonymous?): bucket = .address(request.remoteAddress)
        case (.account?, let d?, .create?): bucket = .create(d)
        case (.publisher?, let d?, .publish?): bucket = .publish(d)
        case (_?, let d?, _): bucket = .token(d)
        default: bucket = .address(request.remoteAddress)
        }
        let decision: GCRA.Decision
        do {
            decision = try limiter.consume(bucket)
        } catch {
            var response = HTTPResponse.error(.serviceUnavailable, "Service temporarily unavailable")
            let now = limiter.clock.nowMicroseconds()
            response.rateLimit = RateLimitHeaders(limit: limiter.charge(bucket).rule.limit, remaining: 0,
                                                  reset: Int(GCRA.ceilSeconds(now + 1_000_000)), retryAfter: 1)
            return response
        }
        var response = decision.allowed ? next(request, &state) : .error(.tooManyRequests, "Rate limit exceeded. Try again later.")
        response.rateLimit = RateLimitHeaders(limit: decision.limit, remaining: decision.remaining, reset: Int(decision.resetSeconds),
                                              retryAfter: decision.allowed ? nil : Int(decision.retryAfterSeconds ?? 1))
        return response
    }
}
