import Testing
@testable import RyzeCore

@Suite struct HTTPModelTests {
    @Test func headersKeepTheApisThreeInSlotsAndTheRestInOrder() {
        var h = HTTPHeaders([("Token", "t"), ("X-Other", "1")])
        #expect(h["token"] == "t")
        #expect(h["x-other"] == "1")
        #expect(h["authorization"] == nil)
        h["Origin"] = "https://a.example"
        h["token"] = nil
        #expect(h["origin"] == "https://a.example")
        #expect(h["token"] == nil)
        let direct = HTTPHeaders(token: "x", authorization: nil, origin: "o")
        #expect(direct["token"] == "x" && direct["origin"] == "o" && direct["authorization"] == nil)
    }

    @Test func rateLimitHeadersAreWrittenFromNumbersInTheContractsNames() {
        var r = HTTPResponse.error(.tooManyRequests, "Rate limit exceeded. Try again later.")
        r.rateLimit = RateLimitHeaders(limit: 100, remaining: 0, reset: 1_700_000_060, retryAfter: 7)
        r.headers.append(("Vary", "Origin"))
        #expect(r.allHeaders.map(\.0) == ["Content-Type", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining",
                                           "X-RateLimit-Reset", "Vary"])
        #expect(r.header("retry-after") == "7")
        #expect(r.header("X-RATELIMIT-RESET") == "1700000060")
        #expect(r.header("content-type") == "application/json")

        let ok = HTTPResponse(status: .noContent, headers: [("Allow", "OPTIONS")])
        #expect(ok.allHeaders.map(\.0) == ["Allow"])
        #expect(ok.header("Retry-After") == nil)
    }
}
