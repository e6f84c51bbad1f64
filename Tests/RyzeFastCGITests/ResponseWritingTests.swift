import Testing
import RyzeCore
@testable import RyzeFastCGI
#if canImport(Glibc)
import Glibc
#endif

/// HTTPResponse in, FastCGI records out: the exact bytes nginx receives.
@Suite struct ResponseWritingTests {
    private func answer(to uri: String = "/x", _ response: HTTPResponse) throws -> Answer {
        let c = try AdapterConnection(respond: { _ in response })
        try c.send(FCGI.request([("REQUEST_METHOD", "GET"), ("REQUEST_URI", uri)]))
        let answer = try c.readAnswer()
        #expect(answer.isWellFormed(id: 1))
        #expect(answer.end?.appStatus == 0 && answer.end?.protocolStatus == 0)
        #expect(try c.closedByAdapter())
        #expect(c.servedToTheEnd())
        return answer
    }

    @Test func headInOrderThenBody() throws {
        var r = HTTPResponse.json(.ok, body: Array(#"{"success":true}"#.utf8))
        r.rateLimit = RateLimitHeaders(limit: 100, remaining: 99, reset: 1_700_000_060)
        r.headers = [("Access-Control-Allow-Origin", "https://app.example"), ("Vary", "Origin")]
        let a = try answer(r)
        #expect(a.text == "Status: 200 OK\r\nContent-Type: application/json\r\n"
                + "X-RateLimit-Limit: 100\r\nX-RateLimit-Remaining: 99\r\nX-RateLimit-Reset: 1700000060\r\n"
                + "Access-Control-Allow-Origin: https://app.example\r\nVary: Origin\r\n"
                + "Content-Length: 16\r\n\r\n" + #"{"success":true}"#)
        // One STDOUT record with everything, the empty one that ends the stream, END_REQUEST.
        #expect(a.records.map(\.type) == [FCGI.stdout, FCGI.stdout, FCGI.endRequest])
        #expect(a.stderr.isEmpty)
        #expect(a.stdout == r.head + r.body)
    }

    @Test func retryAfterOnlyWhenRateLimited() throws {
        var limited = HTTPResponse.error(.tooManyRequests, "Rate limit exceeded. Try again later.")
        limited.rateLimit = RateLimitHeaders(limit: 3, remaining: 0, reset: 1_700_000_020, retryAfter: 20)
        let a = try answer(limited)
        #expect(a.text.hasPrefix("Status: 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 20\r\n"
                                 + "X-RateLimit-Limit: 3\r\nX-RateLimit-Remaining: 0\r\nX-RateLimit-Reset: 1700000020\r\n"
                                 + "Content-Length: \(limited.body.count)\r\n\r\n"))
        var allowed = HTTPResponse.error(.notFound, "Route not found")
        allowed.rateLimit = RateLimitHeaders(limit: 3, remaining: 2, reset: 1_700_000_020)
        let b = try answer(allowed)
        #expect(!b.text.contains("Retry-After"))
        #expect(b.text.hasPrefix("Status: 404 Not Found\r\nContent-Type: application/json\r\nX-RateLimit-Limit: 3\r\n"))
    }

    @Test func noContentHasNeitherTypeNorLength() throws {
        var r = HTTPResponse(status: .noContent, headers: [("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS"),
                                                           ("Access-Control-Max-Age", "600")])
        r.rateLimit = RateLimitHeaders(limit: 30, remaining: 29, reset: 60)
        let a = try answer(r)
        #expect(a.text == "Status: 204 No Content\r\nX-RateLimit-Limit: 30\r\nX-RateLimit-Remaining: 29\r\nX-RateLimit-Reset: 60\r\n"
                + "Access-Control-Allow-Methods: GET, POST, DELETE, OPTIONS\r\nAccess-Control-Max-Age: 600\r\n\r\n")
    }

    @Test func bareResponse() throws {
        #expect(try answer(HTTPResponse(status: .ok)).text == "Status: 200 OK\r\nContent-Length: 0\r\n\r\n")
    }

    /// Larger than libfcgi's 8 KiB output buffer: several STDOUT records, same bytes.
    @Test func bodyLargerThanTheOutputBuffer() throws {
        let body = (0..<20_000).map { UInt8(truncatingIfNeeded: $0 % 251) }
        let r = HTTPResponse(status: .ok, contentType: "application/octet-stream", body: body)
        let a = try answer(r)
        #expect(a.records.filter { $0.type == FCGI.stdout }.count > 2)
        #expect(a.stdout == Array("Status: 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 20000\r\n\r\n".utf8) + body)
    }

    /// A 5xx is also reported on the FastCGI error stream, for nginx's error log.
    @Test func serverErrorsAreReportedOnTheErrorStream() throws {
        let r = HTTPResponse.error(.internalServerError, "Internal server error")
        let a = try answer(to: "/boom?token=secret", r)
        #expect(a.errorText == "ryze-events[\(getpid())]: GET /boom -> 500\n")
        #expect(a.text.hasPrefix("Status: 500 Internal Server Error\r\n"))
        #expect(try answer(HTTPResponse.error(.notFound, "Route not found")).stderr.isEmpty)
    }
}

/// The connection around the requests: keep-alive as nginx asks for it, and peers that break it.
@Suite struct ConnectionTests {
    @Test func keptConnectionServesRequestsUntilOneWithoutTheFlag() throws {
        let c = try AdapterConnection(respond: { request in .json(.ok, body: Array(request.path.utf8)) })
        for (id, path) in [(UInt16(1), "/one"), (2, "/two")] {
            try c.send(FCGI.request(id: id, keepConnection: true, [("REQUEST_URI", path)]))
            let a = try c.readAnswer()
            #expect(a.isWellFormed(id: id))
            #expect(a.text.hasSuffix("\r\n\r\n" + path))
        }
        try c.send(FCGI.request(id: 1, keepConnection: false, [("REQUEST_URI", "/three")]))
        let last = try c.readAnswer()
        #expect(last.text.hasSuffix("/three"))
        // Closed by the adapter after the request without the flag, without this side hanging up.
        #expect(try c.closedByAdapter())
        #expect(c.servedToTheEnd())
        #expect(c.recorder.requests.map(\.path) == ["/one", "/two", "/three"])
        // Counted after the answer went out: read only once the serving thread has returned.
        #expect(c.server.statistics.requestsServed == 3 && c.server.statistics.requestsInFlight == 0)
    }

    /// A body over the cap is read to its end, so the kept connection carries the next request.
    @Test func drainedBodyLeavesTheConnectionUsable() throws {
        let c = try AdapterConnection(maxBodyBytes: 16)
        try c.send(FCGI.request(keepConnection: true, [("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "5000")],
                                body: [UInt8](repeating: 9, count: 5000), bodyChunk: 700))
        #expect(try c.readAnswer().isWellFormed(id: 1))
        try c.send(FCGI.request([("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "3")], body: Array("abc".utf8)))
        #expect(try c.readAnswer().isWellFormed(id: 1))
        #expect(try c.closedByAdapter())
        #expect(c.servedToTheEnd())
        #expect(c.recorder.requests.map(\.bodyTooLarge) == [true, false])
        #expect(c.recorder.requests.last?.body == Array("abc".utf8))
    }

    @Test func peerClosingAKeptConnectionEndsIt() throws {
        let c = try AdapterConnection()
        try c.send(FCGI.request(keepConnection: true, [("REQUEST_URI", "/")]))
        #expect(try c.readAnswer().isWellFormed(id: 1))
        c.shutdownWrite()
        #expect(try c.closedByAdapter())
        #expect(c.servedToTheEnd())
        #expect(c.recorder.requests.count == 1)
    }

    /// A begin record for a role the adapter does not play, or bytes that are not FastCGI: libfcgi
    /// closes the connection, and no handler runs.
    @Test(arguments: [FCGI.record(FCGI.beginRequest, id: 1, [0, 9, 0, 0, 0, 0, 0, 0]),
                      Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)])
    func brokenConnectionIsClosedUnanswered(bytes: [UInt8]) throws {
        let c = try AdapterConnection()
        try c.send(bytes)
        c.shutdownWrite()
        #expect(try c.closedByAdapter())
        #expect(c.servedToTheEnd())
        #expect(c.recorder.requests.isEmpty)
    }
}
