import Foundation
import Testing
@testable import RyzeCore

/// GET /ws/:instance as the app answers it (SPEC §6.2): refusals in the envelope, or the
/// hand-over to nchan on the channel the token's owner decides.
@Suite struct StreamGateTests {
    static let notEnabled = "WebSocket is not enabled for this instance. Configure it first using POST /api/events/websocket/"

    /// The gate's redirect for an instance as the store holds it now.
    func redirect(_ t: TestApp, _ account: String, _ name: String) -> String {
        let instance = t.store.read { $0.instance(account: account, name: name) }!
        return "/__ryze_ws/" + StreamChannel.id(of: instance)
    }

    func app(limits: RateLimiter.Limits = .init(perToken: 10_000, createPerToken: 10_000, perAddress: 10_000),
             stream: RecordingStream = .init()) throws -> TestApp {
        try TestApp(limits: limits, stream: stream, wsOrigins: ["https://app.example"])
    }

    @Test func anEnabledInstanceIsHandedToItsChannel() throws {
        let t = try app()
        let inst = try t.createInstance("shop", extra: #","websocketEnabled":true"#)
        for (token, headers) in [(t.accountToken, [(String, String)]()), (inst, []), (nil, [("Authorization", "Bearer \(inst)")])] {
            let r = t.call("GET", "/ws/shop", token: token, headers: headers)
            #expect(r.status == .ok)
            #expect(r.header("X-Accel-Redirect") == redirect(t, "acme", "shop"))
            #expect(r.body.isEmpty && r.contentType == nil)
            #expect(r.rateLimit != nil)
        }
        // Browsers can only send the token in the query.
        #expect(t.call("GET", "/ws/shop?token=\(inst)").header("X-Accel-Redirect") == redirect(t, "acme", "shop"))
        #expect(redirect(t, "acme", "shop").hasPrefix("/__ryze_ws/acme.shop."))
    }

    @Test func theChannelNamesTheAccountNotJustThePath() throws {
        let t = try app()
        _ = try t.createInstance("shop", extra: #","websocketEnabled":true"#)
        try Accounts.create(in: t.store, name: "other", token: "other-account-token-123", instanceQuota: 0)
        let created = t.call("POST", "/api/instance/new", token: "other-account-token-123", body: #"{"name":"shop","websocketEnabled":true}"#)
        guard case .string(let otherInstance)? = created.json?["instance"]?["token"] else { Issue.record("not created"); return }
        let other = redirect(t, "other", "shop"), acme = redirect(t, "acme", "shop")
        #expect(other.hasPrefix("/__ryze_ws/other.shop.") && acme.hasPrefix("/__ryze_ws/acme.shop.") && other != acme)
        #expect(t.call("GET", "/ws/shop", token: "other-account-token-123").header("X-Accel-Redirect") == other)
        #expect(t.call("GET", "/ws/shop", token: otherInstance).header("X-Accel-Redirect") == other)
        #expect(t.call("GET", "/ws/shop", token: t.accountToken).header("X-Accel-Redirect") == acme)
    }

    @Test func refusalsBeforeTheUpgrade() throws {
        let t = try app()
        let shop = try t.createInstance("shop", extra: #","websocketEnabled":true"#)
        _ = try t.createInstance("Never_Saved")
        _ = try t.createInstance("off", extra: #","websocketEnabled":false"#)
        try Publishers.create(in: t.store, name: "producer", token: "publisher-token-0123456789")
        func refused(_ uri: String, token: String?, headers: [(String, String)] = []) -> (Int, String?, String?) {
            let r = t.call("GET", uri, token: token, headers: headers)
            #expect(r.header("X-Accel-Redirect") == nil)
            #expect(r.contentType == "application/json" && r.rateLimit != nil)
            return (r.status.code, r.message, r.json?["success"].map { "\($0)" })
        }
        #expect(refused("/ws/shop", token: nil).0 == 401)
        #expect(refused("/ws/shop", token: nil).1 == "Missing token in header, Authorization header, or query parameter")
        #expect(refused("/ws/shop", token: "no-such-token").1 == "Invalid token")
        #expect(refused("/ws/shop", token: "publisher-token-0123456789").1 == "Invalid token")
        #expect(refused("/ws/off", token: shop).0 == 403)
        #expect(refused("/ws/off", token: shop).1 == "Instance token does not match the requested instance")
        #expect(refused("/ws/ghost", token: t.accountToken).0 == 404)
        #expect(refused("/ws/ghost", token: t.accountToken).1 == "Instance not found")
        #expect(refused("/ws/Never_Saved", token: t.accountToken).0 == 400)
        #expect(refused("/ws/Never_Saved", token: t.accountToken).1 == Self.notEnabled + "Never_Saved")
        #expect(refused("/ws/off", token: t.accountToken).1 == Self.notEnabled + "off")
        #expect(refused("/ws/shop", token: shop, headers: [("Origin", "https://evil.example")]).0 == 403)
        #expect(refused("/ws/shop", token: shop, headers: [("Origin", "https://evil.example")]).1 == "Origin not allowed")
        #expect(refused("/ws/shop", token: shop, headers: [("Origin", "https://app.example/")]).1 == "Origin not allowed")
        #expect(refused("/ws/shop/x", token: shop).1 == "Route not found")
        #expect(t.call("POST", "/ws/shop", token: shop).status == .methodNotAllowed)
    }

    @Test func anAllowedOriginOrNoneIsLetThrough() throws {
        let t = try app()
        let shop = try t.createInstance("shop", extra: #","websocketEnabled":true"#)
        #expect(t.call("GET", "/ws/shop", token: shop, headers: [("Origin", "https://app.example")]).status == .ok)
        #expect(t.call("GET", "/ws/shop", token: shop).status == .ok)
        // The Origin check comes before the instance is looked up: a foreign page learns nothing.
        #expect(t.call("GET", "/ws/ghost", token: t.accountToken, headers: [("Origin", "https://evil.example")]).message == "Origin not allowed")
    }

    @Test func disablingRefusesTheNextUpgrade() throws {
        let t = try app()
        let shop = try t.createInstance("shop", extra: #","websocketEnabled":true"#)
        #expect(t.call("GET", "/ws/shop", token: shop).status == .ok)
        #expect(t.call("POST", "/api/events/websocket/shop", token: shop, body: #"{"enabled":false}"#).status == .ok)
        #expect(t.call("GET", "/ws/shop", token: shop).message == Self.notEnabled + "shop")
    }

    @Test func theUpgradeCountsAgainstTheTokensBucket() throws {
        let t = try app(limits: .init(perToken: 3, createPerToken: 10_000, perAddress: 10_000))
        _ = try t.createInstance("shop", extra: #","websocketEnabled":true"#)
        #expect(t.call("GET", "/ws/shop", token: t.accountToken).status == .ok)
        #expect(t.call("GET", "/api/instance/list", token: t.accountToken).status == .ok)
        #expect(t.call("GET", "/ws/shop", token: t.accountToken).status == .ok)
        let r = t.call("GET", "/ws/shop", token: t.accountToken)
        #expect(r.status == .tooManyRequests && r.message == "Rate limit exceeded. Try again later.")
        #expect(r.header("X-Accel-Redirect") == nil && r.rateLimit?.retryAfter != nil)
    }

    @Test func deletingAnInstanceClosesItsChannelOnceDurable() throws {
        let stream = RecordingStream()
        let t = try app(stream: stream)
        _ = try t.createInstance("shop", extra: #","websocketEnabled":true"#)
        let first = redirect(t, "acme", "shop")
        #expect(t.call("DELETE", "/api/instance/delete/ghost", token: t.accountToken).status == .notFound)
        #expect(stream.closed.isEmpty)
        #expect(t.call("DELETE", "/api/instance/delete/shop", token: t.accountToken).status == .ok)
        #expect(stream.closed.map { "/__ryze_ws/" + $0 } == [first])
        #expect(t.call("GET", "/ws/shop", token: t.accountToken).message == "Instance not found")
        // A new instance of the same name gets a channel of its own: a deleted channel is never
        // used again (nchan 1.3.6 leaves it broken for later subscribers; see StreamChannel).
        _ = try t.createInstance("shop", extra: #","websocketEnabled":true"#)
        let second = t.call("GET", "/ws/shop", token: t.accountToken).header("X-Accel-Redirect")
        #expect(second == redirect(t, "acme", "shop") && second != first)
    }

    @Test func disablingTheConfigurationClosesTheChannelAndMovesToAFreshOne() throws {
        let stream = RecordingStream()
        let t = try app(stream: stream)
        let inst = try t.createInstance("shop", extra: #","websocketEnabled":true"#)
        let first = redirect(t, "acme", "shop")
        // An enabled configuration saved again (other events) keeps its channel and its connections.
        #expect(t.call("POST", "/api/events/websocket/shop", token: inst, body: #"{"enabled":true,"events":["call.update"]}"#).status == .ok)
        #expect(stream.closed.isEmpty && redirect(t, "acme", "shop") == first)
        #expect(t.call("POST", "/api/events/websocket/shop", token: inst, body: #"{"enabled":false}"#).status == .ok)
        #expect(stream.closed.map { "/__ryze_ws/" + $0 } == [first])
        #expect(t.store.read { $0.instance(account: "acme", name: "shop")!.streamEpoch } == 1)
        // Disabled again: nothing is open, nothing to close, the epoch stays.
        #expect(t.call("POST", "/api/events/websocket/shop", token: inst, body: #"{"enabled":false}"#).status == .ok)
        #expect(stream.closed.count == 1)
        #expect(t.call("POST", "/api/events/websocket/shop", token: inst, body: #"{"enabled":true}"#).status == .ok)
        let second = t.call("GET", "/ws/shop", token: inst).header("X-Accel-Redirect")
        #expect(second == redirect(t, "acme", "shop") && second != first)
        #expect(second?.hasPrefix(first) == true && second?.count == first.count + 8)
        // Disabled once more: the second channel is closed, and a third follows.
        #expect(t.call("POST", "/api/events/websocket/shop", token: t.accountToken, body: #"{"enabled":false}"#).status == .ok)
        #expect(stream.closed.map { "/__ryze_ws/" + $0 } == [first, second!])
        #expect(t.store.read { $0.instance(account: "acme", name: "shop")!.streamEpoch } == 2)
        // The epoch survives a compaction and a replay.
        _ = try t.store.log.compact()
        let reopened = try LogStore(directory: t.dir.path)
        #expect(reopened.read { $0.instance(account: "acme", name: "shop")!.streamEpoch } == 2)
        #expect(reopened.read { $0.liveRecords.count == $0.liveRecordCount })
        // Deleting the instance closes the channel it has now.
        _ = t.call("POST", "/api/events/websocket/shop", token: inst, body: #"{"enabled":true}"#)
        let third = redirect(t, "acme", "shop")
        #expect(t.call("DELETE", "/api/instance/delete/shop", token: t.accountToken).status == .ok)
        #expect(stream.closed.last.map { "/__ryze_ws/" + $0 } == third)
        #expect(t.store.read { $0.liveRecords.count == $0.liveRecordCount })
    }

    @Test func disablingAnAccountNamesEveryChannelOfItsInstances() throws {
        let t = try app()
        _ = try t.createInstance("shop", extra: #","websocketEnabled":true"#)
        _ = try t.createInstance("desk")
        let channels = ["shop", "desk"].map { name in StreamChannel.id(of: t.store.read { $0.instance(account: "acme", name: name)! }) }
        #expect(try Accounts.disable(in: t.store, name: "acme") == [channels[1], channels[0]])
        // Already disabled: the same channels again, for a second try at closing them.
        #expect(try Accounts.disable(in: t.store, name: "acme") == [channels[1], channels[0]])
    }

    @Test func theChannelOfAnEpochAppendsItInHex() {
        let token = TokenDigest(of: "instance-token-0123456789")
        let base = StreamChannel.id(account: "a", instance: "b", incarnation: token)
        #expect(StreamChannel.id(account: "a", instance: "b", incarnation: token, epoch: 0) == base)
        #expect(StreamChannel.id(account: "a", instance: "b", incarnation: token, epoch: 0x1f) == base + "0000001f")
        #expect(StreamChannel.id(account: "a", instance: "b", incarnation: token, epoch: .max) == base + "ffffffff")
    }
}
