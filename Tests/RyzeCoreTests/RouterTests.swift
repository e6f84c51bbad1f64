import Testing
@testable import RyzeCore

@Suite struct RouterTests {
    var router: Router<String> {
        var r = Router<String>()
        r.add("GET", "/api/events/getWebsocket/:instance", "get")
        r.add("POST", "/api/events/websocket/:instance", "post")
        r.add("GET", "/api/instance/list", "list")
        r.add("POST", "/api/instance/new", "new")
        return r
    }

    @Test func matchesAndCaptures() {
        guard case .found(let h, let p) = router.match(method: "GET", path: "/api/events/getWebsocket/abc") else {
            Issue.record("no match"); return
        }
        #expect(h == "get")
        #expect(p["instance"] == "abc")
    }

    @Test func decodesPercentEncodingInSegments() {
        guard case .found(_, let p) = router.match(method: "GET", path: "/api/events/getWebsocket/a%2Db%2Fc") else {
            Issue.record("no match"); return
        }
        #expect(p["instance"] == "a-b/c")
    }

    @Test func methodNotAllowedListsMethods() {
        guard case .methodNotAllowed(let allowed) = router.match(method: "DELETE", path: "/api/instance/list") else {
            Issue.record("expected 405"); return
        }
        #expect(allowed == ["GET"])
    }

    @Test(arguments: ["/api/events/websocket", "/api/events/getwebsocket/a", "/api/instance/list/", "/API/instance/list",
                      "/api/events/getWebsocket/", "//api/instance/list", "api/instance/list", "/", "/api/events/getWebsocket/a/b"])
    func exactPathsOnly(_ path: String) {
        if case .found = router.match(method: "GET", path: path) { Issue.record("\(path) should not match") }
    }

    @Test func noWebsocketAliasForGet() {
        guard case .methodNotAllowed(let allowed) = router.match(method: "GET", path: "/api/events/websocket/x") else {
            Issue.record("expected 405"); return
        }
        #expect(allowed == ["POST"])
    }
}
