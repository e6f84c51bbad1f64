import Foundation
import Testing
@testable import RyzeCore

final class RecordingQueue: EventQueue, @unchecked Sendable {
    let lock = NSLock()
    var events: [QueuedEvent] = []
    var failing = false
    func enqueue(_ event: QueuedEvent) throws {
        try lock.withLock {
            if failing { throw StoreError.io("disk full") }
            events.append(event)
        }
    }
}

final class RecordingStream: EventStream, @unchecked Sendable {
    let lock = NSLock()
    var frames: [(String, [UInt8])] = []
    var closed: [String] = []
    var accepting = true
    func publish(channel: String, envelope: [UInt8]) -> Bool {
        lock.withLock {
            guard accepting else { return false }
            frames.append((channel, envelope))
            return true
        }
    }
    func close(channel: String) { lock.withLock { closed.append(channel) } }
}

@Suite struct PublishTests {
    let publisher = "publisher-token-0123456789"

    func app(queue: RecordingQueue = .init(), stream: RecordingStream = .init()) throws -> TestApp {
        let t = try TestApp(queue: queue, stream: stream, baseURL: "https://api.example")
        try Publishers.create(in: t.store, name: "producer", token: publisher)
        return t
    }

    @Test func envelopeKeepsTheProducersBytesAndFiltersPerChannel() throws {
        let queue = RecordingQueue(), stream = RecordingStream()
        let t = try app(queue: queue, stream: stream)
        _ = try t.createInstance("shop", extra: #","websocketEnabled":true,"websocketEvents":["message.exchange"]"#)
        _ = t.call("POST", "/api/events/webhook/shop", token: t.accountToken,
                   body: #"{"label":"a","enabled":true,"url":"https://h.example/a","mediaBase64":true}"#)
        _ = t.call("POST", "/api/events/webhook/shop", token: t.accountToken,
                   body: #"{"label":"b","enabled":true,"url":"https://h.example/b","events":["call.update"]}"#)
        let data = #"{"n": 12345678901234567890, "message": {"media": {"base64": "QUJD", "mime": "image/png"}, "text": "hi"}}"#
        let r = t.call("POST", "/api/events/publish/shop", token: publisher, body: #"{"event":"message.exchange","data":\#(data),"id":"m-1"}"#)
        #expect(r.status == .accepted)
        #expect(r.json == .object([("success", .bool(true)), ("message", .string("Event accepted")),
                                   ("event", .object([("id", .string("m-1")), ("websocket", .bool(true)), ("webhooks", .number(1))]))]))
        // The queue holds the whole envelope, the producer's bytes of data untouched.
        #expect(queue.events.map(\.labels) == [[WebhookLabel("a")!]])
        let queued = String(decoding: queue.events[0].envelope, as: UTF8.self)
        #expect(queued == #"{"event":"message.exchange","data":\#(data),"instanceData":{"baseUrl":"https://api.example","instance":"shop"}}"#)
        // The WebSocket channel has mediaBase64 false: no base64, everything else as sent.
        #expect(stream.frames.count == 1 && stream.frames[0].0.hasPrefix("acme.shop."))
        let frame = String(decoding: stream.frames[0].1, as: UTF8.self)
        #expect(!frame.contains("QUJD") && frame.contains(#""mime":"image/png""#) && frame.contains("12345678901234567890"))
        // An event the WebSocket configuration filters out, taken by both webhooks (a takes all).
        let call = t.call("POST", "/api/events/publish/shop", token: publisher, body: #"{"event":"call.update","data":{}}"#)
        #expect(call.json?["event"]?["websocket"] == .bool(false) && call.json?["event"]?["webhooks"] == .number(2))
        guard case .string(let id)? = call.json?["event"]?["id"] else { Issue.record("no id"); return }
        #expect(id.hasPrefix("evt_") && id.count == 30)
    }

    @Test func onlyPublisherTokensPublishAndPublisherTokensDoNothingElse() throws {
        let t = try app()
        let inst = try t.createInstance("shop")
        for token in [t.accountToken, inst] {
            #expect(t.call("POST", "/api/events/publish/shop", token: token, body: #"{"event":"call.update","data":{}}"#).message == "Invalid token")
        }
        #expect(t.call("GET", "/api/instance/list", token: publisher).message == "Invalid token")
        #expect(t.call("POST", "/api/events/publish/shop", body: "{}").message == "Missing token in header, Authorization header, or query parameter")
        try Publishers.disable(in: t.store, name: "producer")
        #expect(t.call("POST", "/api/events/publish/shop", token: publisher, body: #"{"event":"call.update","data":{}}"#).message == "Invalid token")
    }

    @Test(arguments: ["", "[]", "{}", #"{"event":"nope","data":{}}"#, #"{"event":"call.update"}"#, #"{"event":"call.update","data":[]}"#,
                      #"{"event":"call.update","data":null}"#, #"{"event":"call.update","data":{},"id":""}"#,
                      #"{"event":"call.update","data":{},"id":"has space"}"#, #"{"event":"call.update","data":{},"id":7}"#,
                      #"{"event":"call.update","data":{},"id":null}"#])
    func invalidBodies(_ body: String) throws {
        let t = try app()
        _ = try t.createInstance("shop")
        let r = t.call("POST", "/api/events/publish/shop", token: publisher, body: body)
        #expect(r.status == .badRequest && r.message == "Invalid request body")
    }

    @Test func instancesByNameAcrossAccounts() throws {
        let t = try app()
        _ = try t.createInstance("shop")
        #expect(t.call("POST", "/api/events/publish/ghost", token: publisher, body: #"{"event":"call.update","data":{}}"#).message == "Instance not found")
        #expect(t.call("POST", "/api/events/publish/acme.shop", token: publisher, body: #"{"event":"call.update","data":{}}"#).status == .accepted)
        try Accounts.create(in: t.store, name: "other", token: "other-account-token-123", instanceQuota: 0)
        #expect(t.call("POST", "/api/instance/new", token: "other-account-token-123", body: #"{"name":"shop"}"#).status == .created)
        let ambiguous = t.call("POST", "/api/events/publish/shop", token: publisher, body: #"{"event":"call.update","data":{}}"#)
        #expect(ambiguous.status == .conflict)
        #expect(t.call("POST", "/api/events/publish/other.shop", token: publisher, body: #"{"event":"call.update","data":{}}"#).status == .accepted)
    }

    @Test func aQueueFailureQueuesNothingAndStreamsNothing() throws {
        let queue = RecordingQueue(), stream = RecordingStream()
        let t = try app(queue: queue, stream: stream)
        _ = try t.createInstance("shop", extra: #","websocketEnabled":true,"webhookEnabled":true,"webhookURL":"https://h.example/""#)
        queue.failing = true
        let r = t.call("POST", "/api/events/publish/shop", token: publisher, body: #"{"event":"call.update","data":{}}"#)
        #expect(r.status == .internalServerError && r.message == "Failed to queue event")
        #expect(stream.frames.isEmpty)
        // A fan-out that does not take the event is no failure of the request.
        queue.failing = false
        stream.accepting = false
        let s = t.call("POST", "/api/events/publish/shop", token: publisher, body: #"{"event":"call.update","data":{}}"#)
        #expect(s.status == .accepted && s.json?["event"]?["websocket"] == .bool(false) && s.json?["event"]?["webhooks"] == .number(1))
        #expect(t.app.streamFailures.load(ordering: .relaxed) == 1)
    }

    @Test func mediaStrippingOnRawBytes() {
        func strip(_ s: String) -> String { String(decoding: EventEnvelope.strippingMedia(Array(s.utf8)), as: UTF8.self) }
        #expect(strip(#"{"data":{"message":{"media":{"base64":"x"}}}}"#) == #"{"data":{"message":{"media":{}}}}"#)
        #expect(strip(#"{"data": {"message": {"media": {"a": 1, "base64": "x", "b": [1,{"base64":2}]}}}, "z": 1}"#)
                == #"{"data": {"message": {"media": {"a":1,"b":[1,{"base64":2}]}}}, "z": 1}"#)
        #expect(strip(#"{"data":{"message":{"media":{"base\u0036\u0034":"x","base64":"y"}}}}"#) == #"{"data":{"message":{"media":{}}}}"#)
        let untouched = #"{"data":{"message":{"text":"base64"}}}"#
        #expect(strip(untouched) == untouched)
        #expect(strip(#"{"data":{"message":{"media":"str"}}}"#) == #"{"data":{"message":{"media":"str"}}}"#)
        // Duplicate keys on the way: every path is stripped, whichever duplicate a receiver keeps.
        #expect(strip(#"{"data":{"message":{"media":{"base64":"x"}},"message":{"media":{}}}}"#)
                == #"{"data":{"message":{"media":{}},"message":{"media":{}}}}"#)
        #expect(strip(#"{"data":{"message":{"media":{"base64":"x"},"media":{"base64":"y","k":1}}},"data":{"message":{"media":{"base64":"z"}}}}"#)
                == #"{"data":{"message":{"media":{},"media":{"k":1}}},"data":{"message":{"media":{}}}}"#)
    }

    @Test func eventIDsAreULIDs() {
        let a = EventID.make(nowMicroseconds: 1_800_000_000_000_000)
        let b = EventID.make(nowMicroseconds: 1_800_000_000_001_000)
        #expect(a.count == 30 && a < b && EventID.isValid(a))
        #expect(Set((0..<1000).map { _ in EventID.make(nowMicroseconds: 1) }).count == 1000)
    }
}
