#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import RyzeHTTP

/// The libcurl client against a server in this process: what goes on the wire, and how every
/// kind of answer and failure comes back.
@Suite struct HTTPClientTests {
    @Test func postsBodyAndHeadersAndReadsTheAnswer() throws {
        let server = try TestServer { _ in .init(status: 201, headers: [("X-Answer", " 42 "), ("Retry-After", "5")], body: Array("created".utf8)) }
        defer { server.close() }
        let body = Array(#"{"event":"message.exchange"}"#.utf8)
        let result = HTTPClient().perform(.init(method: "POST", url: "http://127.0.0.1:\(server.port)/hooks/ryze?x=1",
                                                headers: [("Content-Type", "application/json"), ("webhook-id", "evt_1")], body: body))
        let response = try result.get()
        #expect(response.status == 201)
        #expect(response.header("x-answer") == "42" && response.header("Retry-After") == "5")
        #expect(response.body == Array("created".utf8))
        let seen = server.requests
        #expect(seen.count == 1)
        #expect(seen[0].method == "POST" && seen[0].target == "/hooks/ryze?x=1")
        #expect(seen[0].header("content-type") == "application/json" && seen[0].header("webhook-id") == "evt_1")
        #expect(seen[0].header("expect") == nil, "no Expect: 100-continue round trip")
        #expect(seen[0].body == body)
    }

    @Test func largeBodiesGoWhole() throws {
        let server = try TestServer { _ in .init(status: 204) }
        defer { server.close() }
        let body = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let response = try HTTPClient().perform(.init(method: "POST", url: "http://127.0.0.1:\(server.port)/", body: body)).get()
        #expect(response.status == 204)
        let whole = server.requests.first?.body == body
        #expect(whole, "the body arrived whole")
    }

    @Test func redirectsAreNotFollowed() throws {
        let server = try TestServer { r in
            r.target == "/start" ? .init(status: 302, headers: [("Location", "/elsewhere")]) : .init(status: 200)
        }
        defer { server.close() }
        let response = try HTTPClient().perform(.init(method: "POST", url: "http://127.0.0.1:\(server.port)/start", body: [1])).get()
        #expect(response.status == 302)
        #expect(response.header("location") == "/elsewhere")
        #expect(server.requests.map(\.target) == ["/start"])
    }

    @Test func aSlowServerTimesOut() throws {
        let server = try TestServer { _ in .init(status: 200, delay: 2) }
        defer { server.close() }
        let started = Date()
        let result = HTTPClient().perform(.init(method: "POST", url: "http://127.0.0.1:\(server.port)/", body: [1], timeout: 0.5))
        #expect(result.failure == .timeout)
        #expect(Date().timeIntervalSince(started) < 1.8)
    }

    @Test func aRefusedConnectionIsATransportFailure() throws {
        // A port bound but not listening refuses, and stays ours for the test: no other test's
        // server can be given it meanwhile.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        #expect(bound)
        let result = HTTPClient().perform(.init(method: "POST", url: "http://127.0.0.1:\(UInt16(bigEndian: addr.sin_port))/", body: [1]))
        guard case .transport(let message)? = result.failure else {
            Issue.record("expected a transport failure, got \(result)"); return
        }
        #expect(!message.isEmpty)
    }

    /// What was checked is what is connected to: the name is never resolved by libcurl, and the
    /// request still names the host it was meant for.
    @Test func aPinnedAddressIsWhereTheRequestGoes() throws {
        let server = try TestServer { _ in .init(status: 200) }
        defer { server.close() }
        let client = HTTPClient()
        let url = "http://hooks.ryze-test.invalid:\(server.port)/in"
        #expect(client.perform(.init(method: "POST", url: url, body: [1], timeout: 2)).failure != nil, "the name itself does not resolve")
        let response = try client.perform(.init(method: "POST", url: url, body: [1], pinnedAddress: "127.0.0.1")).get()
        #expect(response.status == 200)
        #expect(server.requests.last?.header("host") == "hooks.ryze-test.invalid:\(server.port)")
        // A handle pinned once and then pinned elsewhere follows the new pin.
        let other = try TestServer { _ in .init(status: 202) }
        defer { other.close() }
        let moved = try client.perform(.init(method: "POST", url: "http://hooks.ryze-test.invalid:\(other.port)/in", body: [1],
                                             pinnedAddress: "127.0.0.1")).get()
        #expect(moved.status == 202)
        // Several pinned addresses are tried in turn: nothing listens on ::1 here.
        let both = try client.perform(.init(method: "POST", url: "http://hooks.ryze-test.invalid:\(other.port)/in", body: [1],
                                            pinnedAddress: "::1,127.0.0.1")).get()
        #expect(both.status == 202)
    }

    /// The same name and port pinned to another address goes there: libcurl's entry for the
    /// name is replaced, never an older address kept from a previous request of the handle.
    @Test func aNewPinReplacesTheOldOneForTheSameNameAndPort() throws {
        let first = try TestServer(address: "127.0.0.1") { _ in .init(status: 201) }
        defer { first.close() }
        let second = try TestServer(address: "127.0.0.2", port: first.port) { _ in .init(status: 202) }
        defer { second.close() }
        let client = HTTPClient()
        let url = "http://hooks.ryze-test.invalid:\(first.port)/in"
        for (pin, status) in [("127.0.0.1", 201), ("127.0.0.2", 202), ("127.0.0.1", 201)] {
            let response = try client.perform(.init(method: "POST", url: url, body: [1], pinnedAddress: pin)).get()
            #expect(response.status == status, "pinned to \(pin)")
        }
    }

    @Test func responseBodiesAreCappedButReadToTheEnd() throws {
        let server = try TestServer { _ in .init(status: 500, body: [UInt8](repeating: 65, count: 10_000)) }
        defer { server.close() }
        let response = try HTTPClient(maxResponseBody: 100).perform(.init(method: "POST", url: "http://127.0.0.1:\(server.port)/", body: [1])).get()
        #expect(response.status == 500 && response.body.count == 100)
        let none = try HTTPClient(maxResponseBody: 0).perform(.init(method: "POST", url: "http://127.0.0.1:\(server.port)/", body: [1])).get()
        #expect(none.status == 500 && none.body.isEmpty)
    }

    @Test func oneClientServesManyRequestsInTurn() throws {
        let server = try TestServer { r in .init(status: r.target == "/fail" ? 503 : 200) }
        defer { server.close() }
        let client = HTTPClient()
        for k in 0..<5 {
            let path = k % 2 == 0 ? "/ok" : "/fail"
            let response = try client.perform(.init(method: "POST", url: "http://127.0.0.1:\(server.port)\(path)", body: Array("\(k)".utf8))).get()
            #expect(response.status == (k % 2 == 0 ? 200 : 503))
        }
        #expect(server.requests.map { String(decoding: $0.body, as: UTF8.self) } == ["0", "1", "2", "3", "4"])
    }

    @Test func hostAndPortOfURLs() {
        #expect(HTTPClient.hostAndPort("https://Example.com/x")! == ("Example.com", 443))
        #expect(HTTPClient.hostAndPort("http://example.com:8080?q")! == ("example.com", 8080))
        #expect(HTTPClient.hostAndPort("http://[2001:db8::1]:9000/")! == ("2001:db8::1", 9000))
        #expect(HTTPClient.hostAndPort("http://[2001:db8::1]/")! == ("2001:db8::1", 80))
        #expect(HTTPClient.hostAndPort("example.com") == nil)
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let f) = self { return f }
        return nil
    }
}
