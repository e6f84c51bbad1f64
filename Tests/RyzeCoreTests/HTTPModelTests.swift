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

    @Test(arguments: [0, 7, 9, 10, 42, 99, 100, 101, 999, 1_000, 65_535, 1_796_297_135, -1, -10, -100, -12_345,
                      Int.max, Int.min, 999_999_999_999_999_999, 1_000_000_000_000_000_000])
    func decimalDigitsAreThoseOfTheNumber(value: Int) {
        DecimalDigits.withASCII(value) { #expect(String(decoding: $0, as: UTF8.self) == String(value)) }
        var sink = ResponseHeadBytes()
        sink.write(decimal: value)
        #expect(sink.bytes == Array(String(value).utf8))
    }

    /// The JSON 200's first lines are written as one literal: the bytes the general way writes,
    /// whichever string objects the status and type are made of.
    @Test func jsonOkHeadIsTheGeneralOne() {
        let built = String(["application", "json"].joined(separator: "/"))
        for status in [HTTPStatus.ok, HTTPStatus(200, "OK"), HTTPStatus(200, String("O") + "K")] {
            let fast = HTTPResponse(status: status, contentType: HTTPResponse.jsonType, body: Array("{}".utf8))
            let general = HTTPResponse(status: status, contentType: built, body: Array("{}".utf8))
            #expect(fast.head == general.head)
            #expect(String(decoding: fast.head, as: UTF8.self) == "Status: 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n")
        }
        let created = HTTPResponse(status: .created, contentType: HTTPResponse.jsonType, body: [])
        #expect(String(decoding: created.head, as: UTF8.self) == "Status: 201 Created\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n")
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
