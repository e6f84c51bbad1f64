import Foundation
import RyzeCore
import Testing
@testable import RyzeStream

@Suite struct NchanStreamTests {
    @Test func publishPostsTheEnvelopeAsJSONToTheChannelsPath() throws {
        let server = try UnixHTTPServer(status: 201)
        let stream = NchanStream(socketPath: server.path)
        let envelope = Array(#"{"event":"call.update","data":{}}"#.utf8)
        #expect(stream.publish(channel: "acme.shop.0123456789abcdef", envelope: envelope))
        let seen = try #require(server.requests.first)
        #expect(seen.method == "POST")
        #expect(seen.path == "/pub/acme.shop.0123456789abcdef")
        #expect(seen.headers["content-type"] == "application/json")
        #expect(seen.body == envelope)
    }

    @Test func acceptedWithoutSubscribersStillCountsAsTaken() throws {
        let server = try UnixHTTPServer(status: 202)
        #expect(NchanStream(socketPath: server.path).publish(channel: "a.b.c", envelope: [0x7B, 0x7D]))
    }

    @Test func anyOtherStatusIsNotTaken() throws {
        let server = try UnixHTTPServer(status: 500)
        let stream = NchanStream(socketPath: server.path)
        #expect(!stream.publish(channel: "a.b.c", envelope: [0x7B, 0x7D]))
        server.answer(with: 404)
        #expect(!stream.publish(channel: "a.b.c", envelope: [0x7B, 0x7D]))
        server.answer(with: 200)
        #expect(!stream.publish(channel: "a.b.c", envelope: [0x7B, 0x7D]))
    }

    @Test func noSocketIsNotTakenAtOnce() {
        let stream = NchanStream(socketPath: "/nonexistent/ryze-fanout.sock")
        let start = Date()
        #expect(!stream.publish(channel: "a.b.c", envelope: [0x7B, 0x7D]))
        stream.close(channel: "a.b.c")   // logged, never thrown
        #expect(Date().timeIntervalSince(start) < 1)
    }

    @Test func aStuckFanOutCostsAtMostTheTimeout() throws {
        let server = try UnixHTTPServer(status: 201, answers: false)
        let stream = NchanStream(socketPath: server.path, timeout: 0.3)
        let start = Date()
        #expect(!stream.publish(channel: "a.b.c", envelope: [0x7B, 0x7D]))
        let waited = Date().timeIntervalSince(start)
        #expect(waited >= 0.25 && waited < 2)
    }

    @Test func closeSendsDeleteToTheChannelsPath() throws {
        let server = try UnixHTTPServer(status: 200)
        NchanStream(socketPath: server.path).close(channel: "acme.shop.0123456789abcdef")
        let seen = try #require(server.requests.first)
        #expect(seen.method == "DELETE")
        #expect(seen.path == "/pub/acme.shop.0123456789abcdef")
        #expect(seen.body.isEmpty)
    }

    @Test func onlyChannelIdsReachTheURL() throws {
        let server = try UnixHTTPServer(status: 201)
        let stream = NchanStream(socketPath: server.path)
        for bad in ["", "shop", "a.b", "a.b.c.d", ".b.c", "a.b.", "a/b.c.d", "a.b.c?x", "a.b/../c.d", "a b.c.d", "a.%2e.c"] {
            #expect(!stream.publish(channel: bad, envelope: [0x7B, 0x7D]), "\(bad)")
            stream.close(channel: bad)
        }
        #expect(server.requests.isEmpty)
        #expect(NchanStream.path(channel: "A-b_9.x.0f") == "/pub/A-b_9.x.0f")
    }

    @Test func concurrentPublishersEachUseAClientOfTheirOwn() async throws {
        let server = try UnixHTTPServer(status: 202)
        let stream = NchanStream(socketPath: server.path)
        let results = await withTaskGroup(of: Bool.self) { group in
            for i in 0..<16 {
                group.addTask { stream.publish(channel: "a.i\(i).c", envelope: Array("{\"n\":\(i)}".utf8)) }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.count == 16 && results.allSatisfy { $0 })
        #expect(Set(server.requests.map(\.path)).count == 16)
    }

    @Test func thePoolReusesIdleClients() {
        let pool = ClientPool()
        pool.with { _ in }
        pool.with { _ in }
        #expect(pool.idleCount == 1)
        pool.with { _ in pool.with { _ in } }
        #expect(pool.idleCount == 2)
    }
}
