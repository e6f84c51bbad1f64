import Foundation
import Testing
@testable import RyzeCore

@Suite struct WebhookHandlerTests {
    @Test func saveGetDeleteRoundTripWithSecretsSealed() throws {
        let t = try TestApp()
        _ = try t.createInstance("a")
        let save = t.call("POST", "/api/events/webhook/a", token: t.accountToken,
                          body: #"{"label":"ops","enabled":true,"url":"https://hooks.example/x","authorization":"Bearer s3cr3t","events":["call.update"]}"#)
        #expect(save.status == .ok)
        #expect(save.message == "Webhook configuration saved")
        guard case .string(let secret)? = save.json?["webhook"]?["signingSecret"] else { Issue.record("no secret"); return }
        #expect(secret.hasPrefix("whsec_") && secret.count == 6 + 44)
        let got = t.call("GET", "/api/events/getWebhook/a?label=ops", token: t.accountToken)
        #expect(got.json?["webhook"] == save.json?["webhook"])
        // Kept across saves, replaced on rotateSecret.
        let again = t.call("POST", "/api/events/webhook/a", token: t.accountToken, body: #"{"label":"ops","enabled":false}"#)
        #expect(again.json?["webhook"]?["signingSecret"] == .string(secret))
        #expect(again.json?["webhook"]?["authorization"] == .string(""))
        let rotated = t.call("POST", "/api/events/webhook/a", token: t.accountToken, body: #"{"label":"ops","enabled":false,"rotateSecret":true}"#)
        #expect(rotated.json?["webhook"]?["signingSecret"] != .string(secret))
        // No secret in the state in clear.
        let stored = t.store.read { $0.instance(account: "acme", name: "a")?.webhooks[WebhookLabel("ops")!] }
        #expect(stored?.config.authorization == "")
        let del = t.call("DELETE", "/api/events/webhook/a", token: t.accountToken, body: #"{"label":"ops"}"#)
        #expect(del.message == "Webhook deleted")
        #expect(t.call("GET", "/api/events/webhook/a?label=ops", token: t.accountToken).message == "Webhook not found")
    }

    @Test func limitsOfThreeEnabledAndTwentyLabels() throws {
        let t = try TestApp()
        _ = try t.createInstance("a")
        func save(_ label: String, _ enabled: Bool) -> HTTPResponse {
            t.call("POST", "/api/events/webhook/a", token: t.accountToken,
                   body: #"{"label":"\#(label)","enabled":\#(enabled),"url":"http://h.example/\#(label)"}"#)
        }
        for k in 0..<3 { #expect(save("on\(k)", true).status == .ok) }
        #expect(save("on3", true).message == "Maximum of 3 enabled webhooks per instance")
        #expect(save("on0", true).status == .ok)   // re-saving an enabled label is no fourth
        for k in 0..<17 { #expect(save("off\(k)", false).status == .ok) }
        #expect(save("off17", false).message == "Maximum of 20 webhooks per instance")
        #expect(save("off0", false).status == .ok)
    }

    @Test func createWithWebhookBlockIsOneRecordAndListShowsTheSummary() throws {
        let t = try TestApp()
        let records = t.store.stats.records
        let r = t.call("POST", "/api/instance/new", token: t.accountToken,
                       body: #"{"name":"w","webhookEnabled":true,"webhookURL":"https://x.example/h","webhookAuthorization":"k"}"#)
        #expect(r.status == .created)
        #expect(r.json?["instance"]?["webhook"]?["label"] == .string("default"))
        #expect(r.json?["instance"]?["webhook"]?["authorization"] == .string("k"))
        #expect(t.store.stats.records == records + 1)   // instance and webhook in one batch
        let list = t.call("GET", "/api/instance/list", token: t.accountToken)
        guard case .array(let items)? = list.json?["instances"] else { Issue.record("no list"); return }
        #expect(items.first?["webhook"] == .object([("label", .string("default")), ("enabled", .bool(true)), ("url", .string("https://x.example/h")),
                                                    ("byEvents", .bool(false)), ("events", .array([])), ("mediaBase64", .bool(false))]))
        let bad = t.call("POST", "/api/instance/new", token: t.accountToken, body: #"{"name":"v","webhookEnabled":true}"#)
        #expect(bad.status == .created && bad.json?["instance"]?["webhook"] == .null)
    }

    @Test func aLabelKeepsItsGenerationWhileEnabledAndGetsANewOneWhenItComesBack() throws {
        let t = try TestApp()
        _ = try t.createInstance("a")
        func generation(_ label: String = "default") -> UInt64? {
            t.store.read { $0.instance(account: "acme", name: "a")?.webhooks[WebhookLabel(label)!]?.generation }
        }
        func save(_ body: String) { #expect(t.call("POST", "/api/events/webhook/a", token: t.accountToken, body: body).status == .ok) }
        save(#"{"enabled":true,"url":"https://hooks.example/x"}"#)
        let first = try #require(generation())
        #expect(first != 0)
        save(#"{"enabled":true,"url":"https://hooks.example/y","mediaBase64":true}"#)
        #expect(generation() == first)   // an update while enabled: the same life
        save(#"{"enabled":false}"#)
        save(#"{"enabled":true,"url":"https://hooks.example/y"}"#)
        let second = try #require(generation())
        #expect(second != first && second != 0)   // enabled again: a new life
        #expect(t.call("DELETE", "/api/events/webhook/a", token: t.accountToken).status == .ok)
        save(#"{"enabled":true,"url":"https://hooks.example/y"}"#)
        #expect(![0, first, second].contains(try #require(generation())))
        // An instance made with its webhook block: its label's first life.
        let made = t.call("POST", "/api/instance/new", token: t.accountToken,
                          body: #"{"name":"b","webhookEnabled":true,"webhookURL":"https://hooks.example/b"}"#)
        #expect(made.status == .created)
        #expect(t.store.read { $0.instance(account: "acme", name: "b")?.webhooks[.default]?.generation } != 0)
        // The generation survives replay and compaction (log record type 12).
        _ = try t.store.compact()
        let reopened = try LogStore(directory: t.dir.path)
        #expect(reopened.read { $0.instance(account: "acme", name: "a")?.webhooks[.default]?.generation } == generation())
    }

    @Test func aMalformedLabelInTheQueryNamesNoLabelNotDefault() throws {
        let t = try TestApp()
        _ = try t.createInstance("a")
        #expect(t.call("POST", "/api/events/webhook/a", token: t.accountToken, body: #"{"enabled":true,"url":"https://hooks.example/x"}"#).status == .ok)
        for query in ["%ZZ", "%", "%2", "%FF"] {
            #expect(t.call("GET", "/api/events/webhook/a?label=\(query)", token: t.accountToken).message == "Webhook not found")
            #expect(t.call("DELETE", "/api/events/webhook/a?label=\(query)", token: t.accountToken).message == "Webhook not found")
        }
        #expect(t.call("GET", "/api/events/webhook/a?label=", token: t.accountToken).message == "Webhook configuration retrieved")
        #expect(t.call("DELETE", "/api/events/webhook/a?label=%64efault", token: t.accountToken).message == "Webhook deleted")
    }

    @Test func webhooksSurviveReplayAndCompaction() throws {
        let t = try TestApp()
        _ = try t.createInstance("a")
        let save = t.call("POST", "/api/events/webhook/a", token: t.accountToken,
                          body: #"{"enabled":true,"url":"https://hooks.example/x","authorization":"tok"}"#)
        _ = try t.store.compact()
        let reopened = try LogStore(directory: t.dir.path)
        #expect(reopened.read { $0.instance(account: "acme", name: "a")?.webhooks } == t.store.read { $0.instance(account: "acme", name: "a")?.webhooks })
        #expect(t.call("GET", "/api/events/webhook/a?label=", token: t.accountToken).json?["webhook"] == save.json?["webhook"])
    }
}
