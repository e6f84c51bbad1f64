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

/// The tree of segments answers exactly as a scan of the routes in registration order would.
@Suite struct RouterOverlapTests {
    var router: Router<String> {
        var r = Router<String>()
        r.add("GET", "/a/:x", "capture")
        r.add("GET", "/a/b", "literal")
        r.add("POST", "/a/b", "post")
        r.add("DELETE", "/:y/c", "delete")
        r.add("VERYLONGMETHOD", "/a/b", "long")
        return r
    }

    @Test func theFirstRegisteredOfOverlappingRoutesWins() {
        guard case .found(let h, let p) = router.match(method: "GET", path: "/a/b") else { Issue.record("no match"); return }
        #expect(h == "capture" && p["x"] == "b")
        guard case .found(let d, let q) = router.match(method: "DELETE", path: "/a/c") else { Issue.record("no match"); return }
        #expect(d == "delete" && q["y"] == "a")
        guard case .found(let post, _) = router.match(method: "POST", path: "/a/b") else { Issue.record("no match"); return }
        #expect(post == "post")
    }

    @Test func allowListsEveryMatchingRouteInRegistrationOrder() {
        guard case .methodNotAllowed(let a) = router.match(method: "PUT", path: "/a/b") else { Issue.record("expected 405"); return }
        #expect(a == ["GET", "POST", "VERYLONGMETHOD"])
        guard case .methodNotAllowed(let c) = router.match(method: "PUT", path: "/a/c") else { Issue.record("expected 405"); return }
        #expect(c == ["GET", "DELETE"])
        if case .found = router.match(method: "GET", path: "/b/b") { Issue.record("/b/b should not match") }
    }

    @Test func methodsLongerThanAWordAreToldApart() {
        guard case .found(let h, _) = router.match(method: "VERYLONGMETHOD", path: "/a/b") else { Issue.record("no match"); return }
        #expect(h == "long")
        guard case .methodNotAllowed(let a) = router.match(method: "VERYLONGMETHOX", path: "/a/b") else { Issue.record("expected 405"); return }
        #expect(a == ["GET", "POST", "VERYLONGMETHOD"])
    }
}

@Suite struct RouteTableTests {
    @Test func duplicateRoutesAreRefused() throws {
        var r = Router<String>()
        try r.register("GET", "/api/events/getWebsocket/:instance", "a")
        #expect(throws: Router<String>.RouteError.duplicate(method: "GET", pattern: "/api/events/getWebsocket/:name")) {
            try r.register("GET", "/api/events/getWebsocket/:name", "b")
        }
        // Another method on the same path is a different route.
        try r.register("POST", "/api/events/getWebsocket/:instance", "c")
    }

    @Test(arguments: ["api/x", "/api//x", "/api/x/", "/api/:", "/api/:1x", "/api/:a/:a", "/api/a%20b", "/api/a b"])
    func malformedPatternsAreRefused(_ pattern: String) {
        var r = Router<String>()
        #expect(throws: Router<String>.RouteError.self) { try r.register("GET", pattern, "x") }
    }

    @Test func methodMustBeAToken() {
        var r = Router<String>()
        #expect(throws: Router<String>.RouteError.self) { try r.register("get", "/x", "x") }
    }

    /// The application's own table registers without a complaint (add() would stop the process).
    @Test func applicationRoutesAreWellFormed() {
        var fresh = Router<Int>()
        for (method, pattern) in [("GET", "/api/events/getWebsocket/:instance"), ("POST", "/api/events/websocket/:instance"),
                                  ("POST", "/api/instance/new"), ("GET", "/api/instance/list"), ("DELETE", "/api/instance/delete/:instance")] {
            #expect(throws: Never.self) { try fresh.register(method, pattern, 0) }
        }
        _ = Application.routes()
    }
}
