/// SPEC §3: charges the request to its bucket, answers 429 when it is empty, and puts the
/// bucket's headers on every answer that comes back, errors included.
struct RateLimiting: Middleware {
    let limiter: RateLimiter

    func handle(_ request: HTTPRequest, _ state: inout RequestState, next: (inout RequestState) -> HTTPResponse) -> HTTPResponse {
        let bucket: RateLimiter.Bucket
        switch (state.principal, state.digest, state.endpoint?.bucket) {
        case (_, _, .anonymous?): bucket = .address(request.remoteAddress)
        case (.account?, let d?, .create?): bucket = .create(d)
        case (.publisher?, let d?, .publish?): bucket = .publish(d)
        case (_?, let d?, _): bucket = .token(d)
        default: bucket = .address(request.remoteAddress)
        }
        let decision = limiter.consume(bucket)
        var response = decision.allowed ? next(&state) : .error(.tooManyRequests, "Rate limit exceeded. Try again later.")
        response.rateLimit = RateLimitHeaders(limit: decision.limit, remaining: decision.remaining, reset: Int(decision.resetSeconds),
                                              retryAfter: decision.allowed ? nil : Int(decision.retryAfterSeconds ?? 1))
        return response
    }
}
