import Foundation
import Testing
@testable import RyzeCore

@Suite struct RequestParameterTests {
    private func lookUp(_ name: String) -> RequestParameter? {
        var name = name
        return name.withUTF8 { RequestParameter(name: $0.baseAddress ?? UnsafePointer(bitPattern: 1)!, count: $0.count) }
    }

    @Test func everyDeclaredParameterIsFoundByItsNameAndNothingElseIs() {
        for p in RequestParameter.allCases {
            let name = p.name.description
            #expect(lookUp(name) == p, "\(name)")
            #expect(lookUp(String(name.dropLast())) == nil)
            #expect(lookUp(name + "X") == nil)
            #expect(lookUp(name.lowercased()) == nil)
        }
        #expect(lookUp("") == nil)
        #expect(lookUp("HTTP_X_OTHER") == nil)
        #expect(lookUp("FCGI_ROLE") == nil)
    }

    /// nginx's configuration and the core's declaration cannot drift apart: the deployed file
    /// passes every declared parameter (but the two only nginx's stock file sends) and no other.
    @Test func deployedParameterFilePassesExactlyTheDeclaredParameters() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("deploy/fastcgi_params.ryze-events"), encoding: .utf8)
        var passed: [String] = []
        var forwardsHeaders = true
        for line in text.split(separator: "\n") {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == ";" })
            guard let directive = words.first, !directive.hasPrefix("#") else { continue }
            if directive == "fastcgi_param", words.count >= 3 { passed.append(String(words[1])) }
            if directive == "fastcgi_pass_request_headers" { forwardsHeaders = words.dropFirst().first != "off" }
        }
        let declared = RequestParameter.allCases.filter(\.isInDeployedParameters).map(\.name.description)
        #expect(passed.sorted() == declared.sorted())
        #expect(Set(passed).count == passed.count)
        #expect(!forwardsHeaders, "nginx must not forward every request header as HTTP_*")
    }

    @Test func eachDeclaredHeaderIsTheParameterNginxNamesItBy() {
        for h in RequestHeader.allCases {
            #expect(HTTPHeaders([("\(h)", "v")]).fastCGIParameters == [h.parameter.name.description: "v"])
        }
        let headerParameters = RequestParameter.allCases.filter { $0.name.description.hasPrefix("HTTP_") }
        #expect(Set(RequestHeader.allCases.map(\.parameter)) == Set(headerParameters))
        #expect(HTTPHeaders([("X-Forwarded-For", "a")]).fastCGIParameters == ["HTTP_X_FORWARDED_FOR": "a"])
    }

    @Test func requestURIGivesPathAndQuery() {
        let r = HTTPRequest(fastCGIParameters: ["REQUEST_METHOD": "DELETE", "REQUEST_URI": "/api/instance/delete/a%20b?x=1&token=t?u",
                                                "REMOTE_ADDR": "10.0.0.7", "FCGI_ROLE": "RESPONDER", "SCRIPT_NAME": "/x"])
        #expect(r.method == "DELETE")
        #expect(r.path == "/api/instance/delete/a%20b")
        #expect(r.query == "x=1&token=t?u")
        #expect(r.remoteAddress == "10.0.0.7")
        #expect(r.body.isEmpty && !r.bodyTooLarge)
        let plain = HTTPRequest(fastCGIParameters: ["REQUEST_URI": "/a"])
        #expect(plain.path == "/a" && plain.query == "")
        let emptyQuery = HTTPRequest(fastCGIParameters: ["REQUEST_URI": "/a?"])
        #expect(emptyQuery.path == "/a" && emptyQuery.query == "")
    }

    @Test func queryStringWinsAndDocumentURIStandsInForAMissingRequestURI() {
        let stock = HTTPRequest(fastCGIParameters: ["REQUEST_URI": "/a?x=1", "QUERY_STRING": "y=2", "DOCUMENT_URI": "/rewritten"])
        #expect(stock.path == "/a" && stock.query == "y=2")
        let noURI = HTTPRequest(fastCGIParameters: ["DOCUMENT_URI": "/d", "QUERY_STRING": "q=1"])
        #expect(noURI.path == "/d" && noURI.query == "q=1")
        let nothing = HTTPRequest(parameters: RequestParameters())
        #expect(nothing.method == "GET" && nothing.path == "/" && nothing.query == "" && nothing.remoteAddress == "")
        #expect(RequestHeader.allCases.allSatisfy { nothing.headers[$0] == nil })
    }

    @Test func methodsAreKeptAsSent() {
        for m in ["GET", "POST", "DELETE", "OPTIONS", "PATCH", "get", ""] {
            #expect(HTTPRequest(fastCGIParameters: ["REQUEST_METHOD": m]).method == m)
        }
    }

    @Test func onlyDeclaredHeadersReachTheRequest() {
        let r = fastCGIRequest("GET", "/", headers: HTTPHeaders([("Token", "t"), ("Authorization", "Bearer b"), ("Origin", "o"),
                                                                   ("X-Other", "1")]))
        #expect(r.headers[.token] == "t")
        #expect(r.headers[.authorization] == "Bearer b")
        #expect(r.headers[.origin] == "o")
        // `r.headers["x-other"]` does not compile: the value nginx might forward has no way in.
        let empty = HTTPRequest(fastCGIParameters: ["HTTP_TOKEN": ""])
        #expect(empty.headers[.token] == "" && empty.headers[.authorization] == nil)
    }

    @Test func contentLengthAsNginxSendsIt() {
        func length(_ value: String?) -> Int {
            RequestParameters.withEnvironment(value.map { ["CONTENT_LENGTH": $0] } ?? [:]) { $0.contentLength }
        }
        #expect(length(nil) == 0)
        #expect(length("") == 0)
        #expect(length("0") == 0)
        #expect(length("65536") == 65536)
        #expect(length("12abc") == 0)
        #expect(length("-5") == 0)
        #expect(length("9223372036854775807") == Int.max)
        #expect(length("9223372036854775808") == Int.max)
        #expect(length("99999999999999999999999999") == Int.max)
    }

    @Test func theLastOfARepeatedParameterWins() {
        let strings: [UnsafeMutablePointer<CChar>?] = [strdup("REQUEST_URI=/first"), strdup("NOEQUALS"), strdup("REQUEST_URI=/second"), nil]
        defer { for s in strings { free(s) } }
        let path = strings.withUnsafeBufferPointer { HTTPRequest(parameters: RequestParameters(environment: $0.baseAddress)).path }
        #expect(path == "/second")
        #expect(HTTPRequest(parameters: RequestParameters(environment: nil)).path == "/")
    }
}

@Suite struct ResponseHeadTests {
    private func text(_ r: HTTPResponse) -> String { String(decoding: r.head, as: UTF8.self) }

    @Test func headInTheContractsOrder() {
        var r = HTTPResponse.error(.tooManyRequests, "Rate limit exceeded. Try again later.")
        r.rateLimit = RateLimitHeaders(limit: 100, remaining: 0, reset: 1_700_000_060, retryAfter: 7)
        r.headers = [("Access-Control-Allow-Origin", "https://a.example"), ("Vary", "Origin")]
        #expect(text(r) == "Status: 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 7\r\n"
                + "X-RateLimit-Limit: 100\r\nX-RateLimit-Remaining: 0\r\nX-RateLimit-Reset: 1700000060\r\n"
                + "Access-Control-Allow-Origin: https://a.example\r\nVary: Origin\r\nContent-Length: \(r.body.count)\r\n\r\n")
        #expect(r.allHeaders.map(\.0) == ["Content-Type", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining",
                                          "X-RateLimit-Reset", "Access-Control-Allow-Origin", "Vary"])
        #expect(r.header("access-control-allow-origin") == "https://a.example")
    }

    @Test func noContentHasNoLengthAndNoRetryAfterUnlessLimited() {
        var r = HTTPResponse(status: .noContent, headers: [("Allow", "GET, OPTIONS")])
        r.rateLimit = RateLimitHeaders(limit: 5, remaining: 4, reset: 60)
        #expect(text(r) == "Status: 204 No Content\r\nX-RateLimit-Limit: 5\r\nX-RateLimit-Remaining: 4\r\nX-RateLimit-Reset: 60\r\n"
                + "Allow: GET, OPTIONS\r\n\r\n")
        #expect(text(HTTPResponse(status: .ok)) == "Status: 200 OK\r\nContent-Length: 0\r\n\r\n")
        #expect(HTTPResponse(status: .ok, headers: [("X-Empty", "")]).allHeaders.map(\.1) == [""])
    }

    @Test func decimalDigits() {
        for v in [0, 7, 10, 429, 1_700_000_060, -1, -905, Int.max, Int.min] {
            #expect(DecimalDigits.withASCII(v) { String(decoding: $0, as: UTF8.self) } == String(v))
        }
    }
}
