import Foundation
import Testing
@testable import RyzeCore

/// JSONParser against Nicolas Seriot's JSONTestSuite (Tests/JSONTestSuite, MIT, copied as it is
/// from nst/JSONTestSuite): every `y_` case must parse, every `n_` case must be refused, and every
/// `i_` case (where RFC 8259 lets a parser choose) must have the outcome documented in
/// Tests/JSONTestSuite/README.md, which `implementationDefined` below mirrors. A new case file
/// without a documented outcome fails the test, so the table cannot fall behind the files.
@Suite struct JSONTestSuiteTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("JSONTestSuite/test_parsing")

    static func cases(_ prefix: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasPrefix(prefix) && $0.hasSuffix(".json") }.sorted()
    }

    static func bytes(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: directory.appendingPathComponent(name)))
    }

    /// The documented outcome of each `i_` case: true = accepted. Why each one is what it is:
    /// Tests/JSONTestSuite/README.md.
    static let implementationDefined: [String: Bool] = [
        // Numbers out of Double's range: accepted, as the nearest Double (±infinity, or 0).
        "i_number_double_huge_neg_exp.json": true,
        "i_number_huge_exp.json": true,
        "i_number_neg_int_huge_exp.json": true,
        "i_number_pos_double_huge_exp.json": true,
        "i_number_real_neg_overflow.json": true,
        "i_number_real_pos_overflow.json": true,
        "i_number_real_underflow.json": true,
        "i_number_too_big_neg_int.json": true,
        "i_number_too_big_pos_int.json": true,
        "i_number_very_big_negative_int.json": true,
        // Escaped lone or mismatched surrogates: refused (no Unicode scalar; a String cannot hold one).
        "i_object_key_lone_2nd_surrogate.json": false,
        "i_string_1st_surrogate_but_2nd_missing.json": false,
        "i_string_1st_valid_surrogate_2nd_invalid.json": false,
        "i_string_incomplete_surrogate_and_escape_valid.json": false,
        "i_string_incomplete_surrogate_pair.json": false,
        "i_string_incomplete_surrogates_escape_valid.json": false,
        "i_string_invalid_lonely_surrogate.json": false,
        "i_string_invalid_surrogate.json": false,
        "i_string_inverted_surrogates_U+1D11E.json": false,
        "i_string_lone_second_surrogate.json": false,
        // Bytes that are not UTF-8: refused (RFC 8259 §8.1: JSON exchanged between systems is UTF-8).
        "i_string_UTF-8_invalid_sequence.json": false,
        "i_string_UTF8_surrogate_U+D800.json": false,
        "i_string_invalid_utf-8.json": false,
        "i_string_iso_latin_1.json": false,
        "i_string_lone_utf8_continuation_byte.json": false,
        "i_string_not_in_unicode_range.json": false,
        "i_string_overlong_sequence_2_bytes.json": false,
        "i_string_overlong_sequence_6_bytes.json": false,
        "i_string_overlong_sequence_6_bytes_null.json": false,
        "i_string_truncated-utf-8.json": false,
        "i_string_UTF-16LE_with_BOM.json": false,
        "i_string_utf16BE_no_BOM.json": false,
        "i_string_utf16LE_no_BOM.json": false,
        // A byte order mark: refused (RFC 8259 §8.1: senders MUST NOT add one).
        "i_structure_UTF-8_BOM_empty_object.json": false,
        // Deeper than JSONParser.maxDepth (64): refused, a 400 on the request path.
        "i_structure_500_nested_arrays.json": false,
    ]

    @Test func theCaseFilesAreThere() {
        #expect(Self.cases("y_").count == 95)
        #expect(Self.cases("n_").count == 188)
        #expect(Self.cases("i_").count == 35)
    }

    @Test(arguments: cases("y_"))
    func accepts(_ name: String) throws {
        let input = try Self.bytes(name)
        #expect(throws: Never.self, "\(name) must parse") { try JSONParser.parse(input) }
    }

    @Test(arguments: cases("n_"))
    func refuses(_ name: String) throws {
        let input = try Self.bytes(name)
        #expect(throws: JSONParser.Error.self, "\(name) must be refused") { try JSONParser.parse(input) }
    }

    @Test(arguments: cases("i_"))
    func hasTheDocumentedOutcome(_ name: String) throws {
        let expected = try #require(Self.implementationDefined[name], "\(name) has no documented outcome")
        let accepted = (try? JSONParser.parse(Self.bytes(name))) != nil
        #expect(accepted == expected, "\(name): documented \(expected ? "accepted" : "refused")")
    }

    /// Every value the parser accepts serialises to JSON it accepts again, as the same value (the
    /// writer never emits `inf`, for the huge numbers above that became infinity).
    @Test(arguments: cases("y_") + cases("i_"))
    func acceptedValuesRoundTrip(_ name: String) throws {
        guard let value = try? JSONParser.parse(Self.bytes(name)) else { return }
        #expect(try JSONParser.parse(value.serialized()) == value, "\(name)")
    }

    /// The limit is exact: `maxDepth` nested arrays or objects parse, one more does not.
    @Test func theDepthLimitIsExact() {
        func nested(_ n: Int, _ open: String, _ close: String) -> String {
            String(repeating: open, count: n) + "1" + String(repeating: close, count: n)
        }
        let limit = JSONParser.maxDepth
        #expect(throws: Never.self) { try JSONParser.parse(nested(limit, "[", "]")) }
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(nested(limit + 1, "[", "]")) }
        #expect(throws: Never.self) { try JSONParser.parse(nested(limit, #"{"a":"#, "}")) }
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(nested(limit + 1, #"{"a":"#, "}")) }
    }

    /// Past the limit a request body is the contract's 400, never a stack overflow: on a route that
    /// parses the whole body (the WebSocket save) and on the publish route, whose `data` is kept as
    /// bytes but parsed first. 1 MiB of `[` is 1,048,576 levels, far beyond any thread's stack.
    @Test func tooDeepABodyIsA400() throws {
        let t = try TestApp()
        _ = try t.createInstance("shop")
        let publisher = "publisher-token-0123456789"
        try Publishers.create(in: t.store, name: "producer", token: publisher)
        let deep = String(repeating: #"{"a":"#, count: JSONParser.maxDepth) + "1" + String(repeating: "}", count: JSONParser.maxDepth)
        for body in [#"{"enabled":true,"x":\#(deep)}"#, String(repeating: "[", count: 60_000)] {
            let r = t.call("POST", "/api/events/websocket/shop", token: t.accountToken, body: body)
            #expect(r.status == .badRequest && r.message == "Invalid request body")
        }
        let publish = #"{"event":"call.update","data":\#(deep)}"#
        let r = t.call("POST", "/api/events/publish/shop", token: publisher, body: publish)
        #expect(r.status == .badRequest && r.message == "Invalid request body")
        let huge = t.call("POST", "/api/events/publish/shop", token: publisher, body: String(repeating: "[", count: 1 << 20))
        #expect(huge.status == .badRequest && huge.message == "Invalid request body")
    }
}
