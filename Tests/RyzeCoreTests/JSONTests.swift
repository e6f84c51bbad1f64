import Testing
@testable import RyzeCore

@Suite struct JSONTests {
    @Test func parsesEveryKind() throws {
        let v = try JSONParser.parse(#" {"a": [1, -2.5e3, true, false, null, "x\n\u00e9\ud83d\ude00"], "b": {}} "#)
        #expect(v["a"] == .array([.number(1), .number(-2500), .bool(true), .bool(false), .null, .string("x\né😀")]))
        #expect(v["b"] == .object([]))
    }

    @Test func booleansAreNotNumbers() throws {
        #expect(try JSONParser.parse("true") == .bool(true))
        #expect(try JSONParser.parse("1") == .number(1))
        #expect(JSONValue.bool(true) != .number(1))
    }

    @Test(arguments: ["", "{", "{\"a\":}", "[1,]", "{\"a\":1,}", "01", "1.", "-", "tru", "\"\\x\"", "\"a\u{01}\"",
                      "{} {}", "{'a':1}", "\"\\ud800\"", "nul", "[", "1e", "\u{FEFF}{}"])
    func rejectsInvalid(_ text: String) {
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(text) }
    }

    @Test func rejectsInvalidUTF8() {
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse([0x22, 0xFF, 0x22]) }
    }

    @Test func limitsDepth() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(deep) }
        let ok = String(repeating: "[", count: 10) + String(repeating: "]", count: 10)
        #expect(throws: Never.self) { try JSONParser.parse(ok) }
    }

    @Test func duplicateKeysLastWins() throws {
        #expect(try JSONParser.parse(#"{"a":1,"a":2}"#)["a"] == .number(2))
    }

    @Test func serialisesCompactlyAndEscapes() throws {
        let v: JSONValue = .object([("s", .string("q\"\\\n\u{01}é")), ("n", .number(3)), ("a", .array([.bool(true), .null]))])
        let text = String(decoding: v.serialized(), as: UTF8.self)
        #expect(text == #"{"s":"q\"\\\n\u0001é","n":3,"a":[true,null]}"#)
        #expect(try JSONParser.parse(text) == v)
    }
}

@Suite struct DirectWriterTests {
    @Test(arguments: [WebSocketConfig(enabled: true, events: [.labelUpdate, .messageStatus], mediaBase64: true),
                      WebSocketConfig(enabled: true), WebSocketConfig(enabled: false),
                      WebSocketConfig(enabled: true, events: EventType.allCases.reversed(), mediaBase64: false)])
    func directWriterMatchesTheTree(_ config: WebSocketConfig) throws {
        let direct = WebSocketConfig.successBody(message: "WebSocket configuration retrieved", config: config)
        let tree: JSONValue = .object([("success", .bool(true)), ("message", .string("WebSocket configuration retrieved")),
                                       ("websocket", config.json)])
        #expect(direct == tree.serialized())
    }
}
