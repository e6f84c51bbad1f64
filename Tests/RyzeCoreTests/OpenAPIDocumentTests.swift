import Foundation
import Testing
@testable import RyzeCore

/// openapi.yaml is the one source of the document; the binary serves a compiled-in copy.
struct OpenAPIDocumentTests {
    static let sourcePath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("openapi.yaml").path

    @Test func compiledCopyIsTheFileByteForByte() throws {
        let file = try #require(FileManager.default.contents(atPath: Self.sourcePath), "cannot read \(Self.sourcePath)")
        // On a difference: run `python3 deploy/embed-openapi.py` and rebuild.
        #expect(OpenAPIDocument.bytes == Array(file), "Sources/RyzeCore/OpenAPI/OpenAPIDocument+Text.swift is out of date: run python3 deploy/embed-openapi.py")
    }

    /// Distinct limits, so that the headers say which bucket was charged.
    static let limits = RateLimiter.Limits(perToken: 100, createPerToken: 20, perAddress: 30)

    @Test func servedWithoutTokenAsYAML() throws {
        let app = try TestApp(limits: Self.limits)
        let r = app.call("GET", "/api/openapi.yaml")
        #expect(r.status == .ok)
        #expect(r.contentType == "application/yaml")
        #expect(r.body == OpenAPIDocument.bytes)
        #expect(r.rateLimit?.limit == 30)
        #expect(r.rateLimit?.remaining == 29)
    }

    @Test func aTokenSentIsIgnoredAndTheNetworkIsCharged() throws {
        let app = try TestApp(limits: Self.limits)
        for token in [app.accountToken, "not-a-token"] {
            let r = app.call("GET", "/api/openapi.yaml", token: token)
            #expect(r.status == .ok)
            #expect(r.rateLimit?.limit == 30)
        }
        #expect(app.call("GET", "/api/openapi.yaml").rateLimit?.remaining == 27)
        // The account's own bucket was not touched.
        let listed = app.call("GET", "/api/instance/list", token: app.accountToken)
        #expect(listed.status == .ok)
        #expect(listed.rateLimit?.limit == 100)
        #expect(listed.rateLimit?.remaining == 99)
    }

    @Test func servedWhileTheStoreCannotCatchUp() throws {
        // The document reads no state: a worker that cannot follow the log still serves it.
        let app = try TestApp(limits: Self.limits)
        let path = app.store.logPath
        try Data("not a log at all".utf8).write(to: URL(fileURLWithPath: path + ".broken"))
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.moveItem(atPath: path + ".broken", toPath: path)
        try ChangeCounter(path: app.dir.path + "/events.seq").bump()
        #expect(app.call("GET", "/api/instance/list", token: app.accountToken).status == .internalServerError)
        #expect(app.call("GET", "/api/openapi.yaml").status == .ok)
    }

    @Test func otherMethodsAre405WithAllow() throws {
        let app = try TestApp(limits: Self.limits)
        let r = app.call("POST", "/api/openapi.yaml", body: "{}")
        #expect(r.status == .methodNotAllowed)
        #expect(r.header("Allow") == "GET, OPTIONS")
    }
}
