#if canImport(Glibc)
import Glibc
#endif
import Testing
import RyzeCore
@testable import RyzeFastCGI

/// FastCGI records in, HTTPRequest out: libfcgi's parsing and the adapter's reading, with the
/// parameters nginx sends (deploy/fastcgi_params.ryze-events) and some it might.
@Suite struct RequestReadingTests {
    private func serveOne(_ parameters: [(String, String)], body: [UInt8] = [], bodyChunk: Int = 0xFFFF,
                          paramsChunk: Int = 0xFFFF, maxBodyBytes: Int = 64) throws -> (HTTPRequest?, Answer) {
        let c = try AdapterConnection(maxBodyBytes: maxBodyBytes)
        try c.send(FCGI.request(parameters, body: body, bodyChunk: bodyChunk, paramsChunk: paramsChunk))
        let answer = try c.readAnswer()
        #expect(answer.isWellFormed(id: 1))
        #expect(answer.end?.appStatus == 0 && answer.end?.protocolStatus == 0)
        #expect(try c.closedByAdapter())
        #expect(c.servedToTheEnd())
        #expect(c.recorder.requests.count == 1)
        return (c.recorder.requests.first, answer)
    }

    @Test func declaredParametersBecomeTheRequestAndOthersAreIgnored() throws {
        let bearer = "Bearer " + String(repeating: "b", count: 300)   // > 127 bytes: a 4-byte length
        let (request, _) = try serveOne([
            ("SCRIPT_FILENAME", "/srv/ignored"),
            ("REQUEST_METHOD", "POST"),
            ("REQUEST_URI", "/api/events/websocket/shop?token=q&x=%20y"),
            ("CONTENT_LENGTH", "11"),
            ("REMOTE_ADDR", "192.0.2.7"),
            ("HTTP_TOKEN", "t-123"),
            ("HTTP_AUTHORIZATION", bearer),
            ("HTTP_ORIGIN", "https://app.example"),
            ("HTTP_X_OTHER", "not declared"),
            (String(repeating: "N", count: 200), "a long undeclared name"),
            ("HTTP_COOKIE", ""),
        ], body: Array("hello world".utf8), bodyChunk: 5)
        let r = try #require(request)
        #expect(r.method == "POST")
        #expect(r.path == "/api/events/websocket/shop")
        #expect(r.query == "token=q&x=%20y")
        #expect(r.remoteAddress == "192.0.2.7")
        #expect(r.headers[.token] == "t-123")
        #expect(r.headers[.authorization] == bearer)
        #expect(r.headers[.origin] == "https://app.example")
        #expect(r.body == Array("hello world".utf8))
        #expect(!r.bodyTooLarge)
    }

    /// Values at and around the one-byte length limit, and one longer than a record, so that a
    /// pair is cut across PARAMS records.
    @Test(arguments: [0, 1, 127, 128, 300, 70_000])
    func valueLengths(length: Int) throws {
        let token = String(repeating: "t", count: length)
        let path = "/" + String(repeating: "p", count: max(0, length - 1))
        let (request, _) = try serveOne([("REQUEST_URI", path + "?q=1"), ("HTTP_TOKEN", token)], paramsChunk: 1000)
        let r = try #require(request)
        #expect(r.headers[.token] == token)
        #expect(r.path == path && r.query == "q=1")
    }

    @Test func queryStringWinsAndDocumentURIStandsInForRequestURI() throws {
        let (stock, _) = try serveOne([("REQUEST_URI", "/a?x=1"), ("QUERY_STRING", "y=2"), ("DOCUMENT_URI", "/rewritten")])
        #expect(stock?.path == "/a" && stock?.query == "y=2")
        let (noURI, _) = try serveOne([("DOCUMENT_URI", "/d"), ("QUERY_STRING", "q=1")])
        #expect(noURI?.path == "/d" && noURI?.query == "q=1")
    }

    @Test func noParametersAndNoBody() throws {
        let (request, _) = try serveOne([])
        let r = try #require(request)
        #expect(r.method == "GET" && r.path == "/" && r.query == "" && r.remoteAddress == "")
        #expect(r.headers[.token] == nil && r.headers[.authorization] == nil && r.headers[.origin] == nil)
        #expect(r.body.isEmpty && !r.bodyTooLarge)
    }

    @Test func methodsComeThroughAsSent() throws {
        for method in ["GET", "POST", "DELETE", "OPTIONS", "PATCH"] {
            let (request, _) = try serveOne([("REQUEST_METHOD", method), ("REQUEST_URI", "/")])
            #expect(request?.method == method)
        }
    }

    @Test func bodyOverTheCapIsReadAndDroppedAndFlagged() throws {
        let (request, _) = try serveOne([("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "1000")],
                                        body: [UInt8](repeating: 7, count: 1000), bodyChunk: 100, maxBodyBytes: 64)
        #expect(request?.bodyTooLarge == true)
        #expect(request?.body.isEmpty == true)
        let (atCap, _) = try serveOne([("CONTENT_LENGTH", "64")], body: [UInt8](repeating: 1, count: 64), maxBodyBytes: 64)
        #expect(atCap?.bodyTooLarge == false && atCap?.body.count == 64)
    }

    @Test func overflowingContentLengthCountsAsTooLarge() throws {
        let (request, _) = try serveOne([("CONTENT_LENGTH", "99999999999999999999999")], body: Array("hello".utf8))
        #expect(request?.bodyTooLarge == true && request?.body.isEmpty == true)
    }

    @Test func malformedContentLengthMeansNoBody() throws {
        let (request, _) = try serveOne([("CONTENT_LENGTH", "5x")], body: Array("hello".utf8))
        #expect(request?.bodyTooLarge == false && request?.body.isEmpty == true)
    }

    /// The peer stops sending in the middle of the body: no request reaches the handler, the
    /// answer is an empty one with application status 1, and the connection is closed.
    @Test func bodyThatStopsEarlyIsDropped() throws {
        let c = try AdapterConnection()
        try c.send(FCGI.begin() + FCGI.stream(FCGI.params, id: 1, FCGI.pair("CONTENT_LENGTH", "10"))
                   + FCGI.record(FCGI.stdin, id: 1, Array("abc".utf8)))
        c.shutdownWrite()
        let answer = try c.readAnswer()
        #expect(answer.isWellFormed(id: 1))
        #expect(answer.stdout.isEmpty)
        #expect(answer.end?.appStatus == 1)
        #expect(try c.closedByAdapter())
        #expect(c.servedToTheEnd())
        #expect(c.recorder.requests.isEmpty)
    }

    /// The same when the body stalls: the read timeout ends the wait.
    @Test func bodyThatStallsIsDroppedAfterTheReadTimeout() throws {
        let c = try AdapterConnection(readTimeoutSeconds: 0.2)
        try c.send(FCGI.begin() + FCGI.stream(FCGI.params, id: 1, FCGI.pair("CONTENT_LENGTH", "10"))
                   + FCGI.record(FCGI.stdin, id: 1, Array("abc".utf8)))
        let answer = try c.readAnswer()
        #expect(answer.stdout.isEmpty)
        #expect(answer.end?.appStatus == 1)
        c.shutdownWrite()   // ends libfcgi's lingering close at once
        #expect(try c.closedByAdapter())
        #expect(c.servedToTheEnd())
        #expect(c.recorder.requests.isEmpty)
    }

    /// stop() wakes threads waiting in accept() with SIGALRM, whose handler has no SA_RESTART. A
    /// wake that lands after accept() returned, while the new connection's request is being read,
    /// must not turn that read into EINTR: libfcgi would drop the request (nginx: 502).
    @Test func wakeSignalWhileARequestIsReadDoesNotBreakIt() throws {
        Signals.installWakeHandler()
        let c = try AdapterConnection()
        try c.send(FCGI.begin() + FCGI.stream(FCGI.params, id: 1, FCGI.pair("CONTENT_LENGTH", "3")))
        usleep(100_000)   // the adapter is now blocked reading the body
        c.signalServingThread(SIGALRM)
        usleep(50_000)
        try c.send(FCGI.record(FCGI.stdin, id: 1, Array("abc".utf8)) + FCGI.record(FCGI.stdin, id: 1, []))
        let answer = try c.readAnswer()
        #expect(answer.isWellFormed(id: 1))
        #expect(answer.end?.appStatus == 0)
        #expect(c.recorder.requests.map(\.body) == [Array("abc".utf8)])
        #expect(try c.closedByAdapter())
        #expect(c.servedToTheEnd())
    }
}
