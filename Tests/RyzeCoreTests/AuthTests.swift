import Testing
@testable import RyzeCore

@Suite struct AuthTests {
    @Test func tokenSourceOrder() {
        func req(_ headers: [(String, String)], query: String = "") -> HTTPRequest {
            fastCGIRequest("GET", query.isEmpty ? "/" : "/?" + query, headers: HTTPHeaders(headers))
        }
        #expect(TokenSource.token(in: req([("token", "h"), ("authorization", "Bearer b")], query: "token=q")) == "h")
        #expect(TokenSource.token(in: req([("authorization", "Bearer b")], query: "token=q")) == "b")
        #expect(TokenSource.token(in: req([("authorization", "bearer  b ")])) == "b")
        #expect(TokenSource.token(in: req([("authorization", "Basic b")], query: "token=q%2B1")) == "q+1")
        #expect(TokenSource.token(in: req([("token", "")])) == nil)
        #expect(TokenSource.token(in: req([])) == nil)
    }

    @Test func missingAndInvalidTokens() throws {
        let t = try TestApp()
        let missing = t.call("GET", "/api/instance/list")
        #expect(missing.status == .unauthorized)
        #expect(missing.message == "Missing token in header, Authorization header, or query parameter")
        let invalid = t.call("GET", "/api/instance/list", token: "nope")
        #expect(invalid.status == .unauthorized)
        #expect(invalid.message == "Invalid token")
        #expect(invalid.json == .object([("success", .bool(false)), ("error", .object([("message", .string("Invalid token"))]))]))
    }

    @Test func instanceTokenScopes() throws {
        let t = try TestApp()
        let a = try t.createInstance("a")
        _ = try t.createInstance("b")
        #expect(t.call("GET", "/api/events/getWebsocket/a", token: a).message == "WebSocket not configured for this instance")
        let other = t.call("GET", "/api/events/getWebsocket/b", token: a)
        #expect(other.status == .forbidden)
        #expect(other.message == "Instance token does not match the requested instance")
        #expect(t.call("GET", "/api/events/getWebsocket/ghost", token: a).status == .forbidden)
        #expect(t.call("POST", "/api/instance/new", token: a, body: #"{"name":"c"}"#).message == "Invalid token")
        #expect(t.call("DELETE", "/api/instance/delete/a", token: a).message == "Invalid token")
    }

    @Test func accountTokenScopes() throws {
        let t = try TestApp()
        _ = try t.createInstance("a")
        let ghost = t.call("GET", "/api/events/getWebsocket/ghost", token: t.accountToken)
        #expect(ghost.status == .notFound)
        #expect(ghost.message == "Instance not found")
        #expect(t.call("GET", "/api/events/getWebsocket/bad%20name", token: t.accountToken).message == "Instance not found")
        // Another account cannot see acme's instance.
        let other = "other-account-token-xyz"
        try t.store.write { _ in (LogRecord.accountCreated(name: "other", token: TokenDigest(of: other), instanceQuota: 0), ()) }
        #expect(t.call("GET", "/api/events/getWebsocket/a", token: other).status == .notFound)
    }

    @Test func disabledAccountLocksItsTokens() throws {
        let t = try TestApp()
        let inst = try t.createInstance("a")
        try t.store.write { _ in (LogRecord.accountDisabled(name: "acme"), ()) }
        #expect(t.call("GET", "/api/instance/list", token: t.accountToken).message == "Invalid token")
        #expect(t.call("GET", "/api/instance/list", token: inst).message == "Invalid token")
    }

    @Test func generatedTokensAreURLSafe() {
        let t = TokenGenerator.make()
        #expect(t.count == 43)
        #expect(t.utf8.allSatisfy { c in (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x5F })
        #expect(TokenGenerator.make() != t)
    }

    @Test func digestRoundTrip() {
        let d = TokenDigest(of: "abc")
        // SHA-256("abc") = ba7816bf...
        #expect(d.bytes.prefix(4) == [0xBA, 0x78, 0x16, 0xBF])
        #expect(TokenDigest(bytes: d.bytes) == d)
    }
}
