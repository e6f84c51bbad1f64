import Testing
@testable import RyzeCore

@Suite struct WebSocketConfigTests {
    func parse(_ text: String) -> WebSocketConfig? {
        guard let v = try? JSONParser.parse(text) else { return nil }
        return WebSocketConfig.parse(body: v)
    }

    @Test(arguments: [
        "null", "[]", "\"x\"", "1", "{}", #"{"enabled":null}"#, #"{"enabled":"true"}"#, #"{"enabled":1}"#,
        #"{"enabled":true,"events":"message.exchange"}"#, #"{"enabled":true,"events":[1]}"#,
        #"{"enabled":true,"events":["message.unknown"]}"#, #"{"enabled":true,"events":null}"#,
        #"{"enabled":true,"mediaBase64":"yes"}"#, #"{"enabled":true,"mediaBase64":null}"#,
        #"{"enabled":true,"events":["MESSAGE.EXCHANGE"]}"#, #"{"enabled":true,"events":[null]}"#,
    ])
    func invalidBodies(_ text: String) {
        #expect(parse(text) == nil)
    }

    @Test func defaultsAndDedupe() {
        #expect(parse(#"{"enabled":true}"#) == WebSocketConfig(enabled: true, events: [], mediaBase64: false))
        let c = parse(#"{"enabled":true,"events":["call.update","message.exchange","call.update"],"mediaBase64":true,"other":1}"#)
        #expect(c?.events == [.callUpdate, .messageExchange])
        #expect(c?.mediaBase64 == true)
    }

    @Test func disabledCarriesNothing() {
        let c = parse(#"{"enabled":false,"events":["call.update"],"mediaBase64":true}"#)
        #expect(c == WebSocketConfig(enabled: false, events: [], mediaBase64: false))
        #expect(c?.events == [])
        #expect(c?.mediaBase64 == false)
    }

    @Test func allSixNames() {
        #expect(EventType.allCases.map(\.name) == ["message.exchange", "message.status", "call.update", "group.flow", "instance.state", "label.update"])
    }

    @Test func nameRules() {
        #expect(Names.isValidName("a_B-9"))
        #expect(!Names.isValidName(""))
        #expect(!Names.isValidName("a b"))
        #expect(!Names.isValidName("é"))
        #expect(Names.isValidName(String(repeating: "a", count: 100)))
        #expect(!Names.isValidName(String(repeating: "a", count: 101)))
        #expect(Names.isValidChosenToken(String(repeating: "x", count: 16)))
        #expect(!Names.isValidChosenToken(String(repeating: "x", count: 15)))
        #expect(!Names.isValidChosenToken(String(repeating: "x", count: 257)))
        #expect(!Names.isValidChosenToken("has a space in it!!"))
    }
}

@Suite struct EventListTests {
    @Test func keepsOrderDropsDuplicatesAndRoundTrips() {
        let all = EventType.allCases.reversed().map { $0 }
        let c = WebSocketConfig(enabled: true, events: all + all, mediaBase64: true)
        #expect(c.events == all)
        #expect(c.eventList.count == 6)
        let bytes = LogRecord.websocketSaved(account: "a", name: "b", websocket: c).encode()
        #expect(bytes.withUnsafeBytes { LogRecord.decode($0) } == .websocketSaved(account: "a", name: "b", websocket: c))
        #expect(WebSocketConfig(enabled: true, events: [.callUpdate]) != WebSocketConfig(enabled: true, events: [.groupFlow]))
    }

    @Test func utf8FastPathAndFallback() {
        for text in ["plain-ascii", "ünïcödé", ""] {
            let bytes = Array(text.utf8)
            #expect(bytes.withUnsafeBufferPointer { String.fromUTF8($0) } == text)
        }
        #expect([UInt8]([0x61, 0xC3]).withUnsafeBufferPointer { String.fromUTF8($0) } == nil)
    }

    @Test func decimalAppending() {
        for n in [0, 7, 10, 99, 100, 12345, Int.max] {
            var out: [UInt8] = []
            out.appendDecimal(n)
            #expect(String(decoding: out, as: UTF8.self) == String(n))
        }
        var padded: [UInt8] = Array("t=".utf8)
        padded.appendDecimal(7, width: 3)
        padded.appendDecimal(1234, width: 2)
        #expect(String(decoding: padded, as: UTF8.self) == "t=0071234")
    }
}
