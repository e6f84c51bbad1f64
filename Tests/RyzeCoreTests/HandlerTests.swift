import Testing
@testable import RyzeCore

@Suite struct HandlerTests {
    @Test func websocketLifecycle() throws {
        let t = try TestApp()
        _ = try t.createInstance("a")
        let save = t.call("POST", "/api/events/websocket/a", token: t.accountToken,
                          body: #"{"enabled":true,"events":["label.update","label.update"],"mediaBase64":true}"#)
        #expect(save.status == .ok)
        #expect(save.message == "WebSocket configuration saved")
        #expect(save.json?["websocket"] == .object([("enabled", .bool(true)), ("events", .array([.string("label.update")])), ("mediaBase64", .bool(true))]))
        let get = t.call("GET", "/api/events/getWebsocket/a", token: t.accountToken)
        #expect(get.message == "WebSocket configuration retrieved")
        #expect(get.json?["websocket"] == save.json?["websocket"])
        // Replaced, never merged.
        _ = t.call("POST", "/api/events/websocket/a", token: t.accountToken, body: #"{"enabled":true}"#)
        #expect(t.call("GET", "/api/events/getWebsocket/a", token: t.accountToken).json?["websocket"]?["mediaBase64"] == .bool(false))
        // A saved enabled:false is a 200.
        _ = t.call("POST", "/api/events/websocket/a", token: t.accountToken, body: #"{"enabled":false,"events":["call.update"]}"#)
        let off = t.call("GET", "/api/events/getWebsocket/a", token: t.accountToken)
        #expect(off.status == .ok)
        #expect(off.json?["websocket"] == WebSocketConfig.unconfigured.json)
    }

    @Test func invalidBodyChangesNothing() throws {
        let t = try TestApp()
        _ = try t.createInstance("a")
        _ = t.call("POST", "/api/events/websocket/a", token: t.accountToken, body: #"{"enabled":true,"events":["call.update"]}"#)
        let records = t.store.stats.records
        for body in ["", "nope", "[]", #"{"enabled":"yes"}"#, #"{"events":[]}"#, "null"] {
            let r = t.call("POST", "/api/events/websocket/a", token: t.accountToken, body: body)
            #expect(r.status == .badRequest)
            #expect(r.message == "Invalid request body")
        }
        #expect(t.store.stats.records == records)
        #expect(t.call("GET", "/api/events/getWebsocket/a", token: t.accountToken).json?["websocket"]?["events"] == .array([.string("call.update")]))
    }

    @Test func bodyTooLarge() throws {
        let t = try TestApp()
        _ = try t.createInstance("a")
        let big = #"{"enabled":true,"x":""# + String(repeating: "x", count: 70_000) + "\"}"
        let r = t.call("POST", "/api/events/websocket/a", token: t.accountToken, body: big)
        #expect(r.status == .payloadTooLarge)
        #expect(r.message == "Request body too large")
    }

    @Test func createRules() throws {
        let t = try TestApp()
        let chosen = "chosen-token-1234567890"
        let r = t.call("POST", "/api/instance/new", token: t.accountToken,
                       body: #"{"name":"x","token":"\#(chosen)","websocketEnabled":true,"websocketEvents":["group.flow"],"proxy":{"host":"h"}}"#)
        #expect(r.status == .created)
        #expect(r.json?["instance"]?["token"] == .string(chosen))
        #expect(r.json?["instance"]?["status"] == .string("disconnected"))
        #expect(r.json?["instance"]?["websocket"]?["events"] == .array([.string("group.flow")]))
        #expect(t.call("POST", "/api/instance/new", token: t.accountToken, body: #"{"name":"x"}"#).message == "Instance name already exists")
        #expect(t.call("POST", "/api/instance/new", token: t.accountToken, body: #"{"name":"y","token":"\#(chosen)"}"#).message == "Token already in use")
        #expect(t.call("POST", "/api/instance/new", token: t.accountToken, body: #"{"name":"y","token":"\#(t.accountToken)"}"#).message == "Token already in use")
        for bad in [#"{"name":"bad name"}"#, #"{}"#, #"{"name":1}"#, "x", #"{"name":"ok","token":"short"}"#, #"{"name":"ok","token":5}"#] {
            #expect(t.call("POST", "/api/instance/new", token: t.accountToken, body: bad).message == "Invalid request body")
        }
        // Invalid websocket block: created anyway, websocket null.
        let w = t.call("POST", "/api/instance/new", token: t.accountToken, body: #"{"name":"w","websocketEnabled":"yes"}"#)
        #expect(w.status == .created)
        #expect(w.json?["instance"]?["websocket"] == .null)
        // Quota is 3 for this account: x, w, then one more.
        _ = try t.createInstance("z")
        let q = t.call("POST", "/api/instance/new", token: t.accountToken, body: #"{"name":"q"}"#)
        #expect(q.status == .forbidden)
        #expect(q.message == "Account instance quota exceeded")
    }

    @Test func listAndDelete() throws {
        let t = try TestApp()
        let b = try t.createInstance("b")
        _ = try t.createInstance("a")
        let all = t.call("GET", "/api/instance/list", token: t.accountToken)
        #expect(all.message == "2 Instances found")
        #expect(all.json?["instances"]?.names == ["a", "b"])
        #expect(t.call("GET", "/api/instance/list?instanceName=b", token: t.accountToken).message == "1 Instance found")
        #expect(t.call("GET", "/api/instance/list?instanceName=a,nope", token: t.accountToken).json?["instances"]?.names == ["a"])
        #expect(t.call("GET", "/api/instance/list?instanceName=nope", token: t.accountToken).message == "Instance not found")
        #expect(t.call("GET", "/api/instance/list?instanceName=nope,other", token: t.accountToken).message == "0 Instances found")
        // A malformed escape is a name as sent, which cannot exist; never "" (no filter at all).
        #expect(t.call("GET", "/api/instance/list?instanceName=%ZZ", token: t.accountToken).message == "Instance not found")
        #expect(t.call("GET", "/api/instance/list?instanceName=a", token: b).json?["instances"]?.names == ["b"])
        let del = t.call("DELETE", "/api/instance/delete/b", token: t.accountToken)
        #expect(del.message == "Instance deleted")
        #expect(del.json?["instance"] == .object([("status", .string("deleted"))]))
        #expect(t.call("GET", "/api/instance/list", token: b).message == "Invalid token")
        #expect(t.call("DELETE", "/api/instance/delete/b", token: t.accountToken).message == "Instance not found")
    }

    @Test func corsAndUnknownRoutes() throws {
        let t = try TestApp(cors: ["https://app.example"])
        let pre = t.call("OPTIONS", "/api/instance/list", headers: [("Origin", "https://app.example")])
        #expect(pre.status == .noContent)
        #expect(pre.header("Access-Control-Allow-Origin") == "https://app.example")
        #expect(pre.header("Access-Control-Allow-Methods") == "GET, POST, DELETE, OPTIONS")
        #expect(pre.header("Access-Control-Allow-Headers") == "Content-Type, Authorization, token")
        #expect(pre.header("Access-Control-Max-Age") == "600")
        #expect(pre.header("Vary") == "Origin")
        let plain = t.call("GET", "/api/instance/list", token: t.accountToken, headers: [("Origin", "https://app.example")])
        #expect(plain.header("Access-Control-Allow-Origin") == "https://app.example")
        #expect(plain.header("Access-Control-Expose-Headers")?.contains("X-RateLimit-Remaining") == true)
        let evil = t.call("GET", "/api/instance/list", token: t.accountToken, headers: [("Origin", "https://evil.example")])
        #expect(evil.header("Access-Control-Allow-Origin") == nil)
        let nf = t.call("GET", "/nope", token: t.accountToken)
        #expect(nf.status == .notFound)
        #expect(nf.message == "Route not found")
        #expect(nf.header("X-RateLimit-Limit") != nil)
        let na = t.call("PUT", "/api/instance/new", token: t.accountToken)
        #expect(na.status == .methodNotAllowed)
        #expect(na.message == "Method not allowed")
        #expect(na.header("Allow") == "POST, OPTIONS")
    }
}

extension JSONValue {
    var names: [String] {
        guard case .array(let items) = self else { return [] }
        return items.compactMap { if case .string(let s)? = $0["name"] { return s } else { return nil } }
    }
}
