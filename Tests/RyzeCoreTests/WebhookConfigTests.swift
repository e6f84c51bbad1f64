import Testing
@testable import RyzeCore

@Suite struct WebhookConfigTests {
    func parse(_ text: String) -> WebhookConfig.Update? {
        guard let v = try? JSONParser.parse(text) else { return nil }
        return WebhookConfig.parse(body: v)
    }

    func label(_ s: String) -> WebhookLabel { WebhookLabel(s)! }

    static let longAuthorization = String(repeating: "a", count: 1025)
    static let longURL = "https://example.com/" + String(repeating: "a", count: 2029)
    static let longLabel = String(repeating: "l", count: 65)

    @Test(arguments: [
        // not an object
        "null", "[]", "\"x\"", "1", "true",
        // enabled missing or not a boolean
        "{}", #"{"url":"https://example.com"}"#, #"{"enabled":null}"#, #"{"enabled":"true"}"#, #"{"enabled":1}"#,
        #"{"enabled":[true]}"#,
        // url required when enabled, and its rule
        #"{"enabled":true}"#, #"{"enabled":true,"url":""}"#, #"{"enabled":true,"url":null}"#,
        #"{"enabled":true,"url":1}"#, #"{"enabled":true,"url":["https://example.com"]}"#,
        #"{"enabled":true,"url":"ftp://example.com"}"#, #"{"enabled":true,"url":"example.com"}"#,
        #"{"enabled":true,"url":"https://user:password@example.com"}"#, #"{"enabled":true,"url":"https://"}"#,
        #"{"enabled":true,"url":"https://example.com/a b"}"#, #"{"enabled":true,"url":"https://example.com/\n"}"#,
        #"{"enabled":true,"url":"\#(longURL)"}"#,
        // authorization
        #"{"enabled":true,"url":"https://example.com","authorization":null}"#,
        #"{"enabled":true,"url":"https://example.com","authorization":1}"#,
        #"{"enabled":true,"url":"https://example.com","authorization":"a\nb"}"#,
        #"{"enabled":true,"url":"https://example.com","authorization":"a\rb"}"#,
        #"{"enabled":true,"url":"https://example.com","authorization":"a\tb"}"#,
        #"{"enabled":true,"url":"https://example.com","authorization":"a\u0000b"}"#,
        #"{"enabled":true,"url":"https://example.com","authorization":"a\u007fb"}"#,
        #"{"enabled":true,"url":"https://example.com","authorization":"Bearer é"}"#,
        #"{"enabled":true,"url":"https://example.com","authorization":"\#(longAuthorization)"}"#,
        // byEvents, mediaBase64, rotateSecret
        #"{"enabled":true,"url":"https://example.com","byEvents":"true"}"#,
        #"{"enabled":true,"url":"https://example.com","byEvents":null}"#,
        #"{"enabled":true,"url":"https://example.com","byEvents":1}"#,
        #"{"enabled":true,"url":"https://example.com","mediaBase64":"yes"}"#,
        #"{"enabled":true,"url":"https://example.com","mediaBase64":null}"#,
        #"{"enabled":true,"url":"https://example.com","rotateSecret":"true"}"#,
        #"{"enabled":true,"url":"https://example.com","rotateSecret":null}"#,
        // events: the WebSocket rules
        #"{"enabled":true,"url":"https://example.com","events":"message.exchange"}"#,
        #"{"enabled":true,"url":"https://example.com","events":null}"#,
        #"{"enabled":true,"url":"https://example.com","events":[1]}"#,
        #"{"enabled":true,"url":"https://example.com","events":[null]}"#,
        #"{"enabled":true,"url":"https://example.com","events":["message.unknown"]}"#,
        #"{"enabled":true,"url":"https://example.com","events":["MESSAGE.EXCHANGE"]}"#,
        #"{"enabled":true,"url":"https://example.com","events":{"a":"call.update"}}"#,
        // label
        #"{"label":null,"enabled":true,"url":"https://example.com"}"#,
        #"{"label":1,"enabled":true,"url":"https://example.com"}"#,
        #"{"label":["a"],"enabled":true,"url":"https://example.com"}"#,
        #"{"label":"a b","enabled":true,"url":"https://example.com"}"#,
        #"{"label":"a/b","enabled":true,"url":"https://example.com"}"#,
        #"{"label":"é","enabled":true,"url":"https://example.com"}"#,
        #"{"label":"\#(longLabel)","enabled":true,"url":"https://example.com"}"#,
        // disabled: every present field is still checked (only url "" is let through)
        #"{"enabled":false,"url":null}"#, #"{"enabled":false,"url":1}"#, #"{"enabled":false,"url":"ftp://x"}"#,
        #"{"enabled":false,"url":"not a url"}"#, #"{"enabled":false,"authorization":1}"#,
        #"{"enabled":false,"authorization":"a\nb"}"#, #"{"enabled":false,"byEvents":"x"}"#,
        #"{"enabled":false,"events":["nope"]}"#, #"{"enabled":false,"events":null}"#,
        #"{"enabled":false,"mediaBase64":null}"#, #"{"enabled":false,"rotateSecret":1}"#,
        #"{"label":"a b","enabled":false}"#,
    ])
    func invalidBodies(_ text: String) throws {
        // Each body is valid JSON: the refusal must come from the webhook rules, not the parser.
        let v = try JSONParser.parse(text)
        #expect(WebhookConfig.parse(body: v) == nil)
    }

    @Test func fullBody() throws {
        let u = try #require(parse(#"""
            {"label":"crm.v2_prod-1","enabled":true,"url":"https://hooks.example.com/ryze?x=1","authorization":"Bearer abc 123",
             "byEvents":true,"events":["call.update","message.exchange","call.update"],"mediaBase64":true,"rotateSecret":true,
             "signingSecret":"ignored","other":{"nested":[1]}}
            """#))
        #expect(u.rotateSecret)
        #expect(u.config == WebhookConfig(label: label("crm.v2_prod-1"), enabled: true, url: "https://hooks.example.com/ryze?x=1",
                                          authorization: "Bearer abc 123", byEvents: true,
                                          events: [.callUpdate, .messageExchange], mediaBase64: true))
        #expect(u.config.events == [.callUpdate, .messageExchange])
    }

    @Test func defaults() throws {
        let u = try #require(parse(#"{"enabled":true,"url":"http://example.com"}"#))
        #expect(u.rotateSecret == false)
        #expect(u.config.label == .default)
        #expect(u.config.label.name == "default")
        #expect(u.config.authorization == "")
        #expect(u.config.byEvents == false)
        #expect(u.config.events == [])
        #expect(u.config.mediaBase64 == false)
        #expect(parse(#"{"label":"","enabled":true,"url":"http://example.com"}"#)?.config.label == .default)
        #expect(parse(#"{"label":"default","enabled":true,"url":"http://example.com"}"#)?.config.label == .default)
        #expect(parse(#"{"enabled":true,"url":"http://example.com","authorization":""}"#)?.config.authorization == "")
        #expect(parse(#"{"enabled":true,"url":"http://example.com","events":[]}"#)?.config.events == [])
    }

    @Test func limitsAreInclusive() {
        let auth = String(repeating: "~", count: 1024)
        #expect(parse(#"{"enabled":true,"url":"https://example.com","authorization":"\#(auth)"}"#)?.config.authorization == auth)
        let url = "https://example.com/" + String(repeating: "a", count: 2028)
        #expect(parse(#"{"enabled":true,"url":"\#(url)"}"#)?.config.url == url)
        let l = String(repeating: "L", count: 64)
        #expect(parse(#"{"label":"\#(l)","enabled":true,"url":"https://example.com"}"#)?.config.label.name == l)
        // Every printable ASCII character, space included, may be in an authorization.
        let printable = String(decoding: Array(UInt8(0x20)...UInt8(0x7E)), as: UTF8.self)
        #expect(WebhookConfig.isValidAuthorization(printable))
        #expect(!WebhookConfig.isValidAuthorization("\u{1F}"))
    }

    @Test func disabledCarriesNothingButItsLabel() throws {
        let u = try #require(parse(#"""
            {"label":"x","enabled":false,"url":"https://example.com","authorization":"Bearer s","byEvents":true,
             "events":["call.update"],"mediaBase64":true,"rotateSecret":true}
            """#))
        #expect(u.config == WebhookConfig(label: label("x"), enabled: false))
        #expect(u.config.url == "")
        #expect(u.config.authorization == "")
        #expect(u.config.byEvents == false)
        #expect(u.config.events == [])
        #expect(u.config.mediaBase64 == false)
        #expect(u.rotateSecret)
        #expect(parse(#"{"enabled":false}"#)?.config == WebhookConfig(label: .default, enabled: false))
        #expect(parse(#"{"enabled":false,"url":""}"#)?.config == WebhookConfig(label: .default, enabled: false))
        // The initialiser keeps the invariant for every caller, the log's decoder included.
        let direct = WebhookConfig(label: .default, enabled: false, url: "https://x", authorization: "a", byEvents: true,
                                   events: [.groupFlow], mediaBase64: true)
        #expect(direct == WebhookConfig.unconfigured)
    }

    @Test func whatGetReturnsCanBeSentBack() throws {
        let secret = SigningSecret.generate()
        let configs = [
            WebhookConfig(label: label("a"), enabled: false),
            WebhookConfig(label: label("b"), enabled: true, url: "https://example.com/h", authorization: "Token t",
                          byEvents: true, events: [.labelUpdate, .instanceState], mediaBase64: true),
            WebhookConfig(label: .default, enabled: true, url: "http://[::1]:8080/"),
        ]
        for c in configs {
            let text = String(decoding: c.json(signingSecret: secret).serialized(), as: UTF8.self)
            #expect(parse(text)?.config == c)
            #expect(parse(text)?.rotateSecret == false)
        }
    }

    @Test func jsonShapesByteForByte() throws {
        let secret = try #require(SigningSecret(text: "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="))
        let c = WebhookConfig(label: label("crm"), enabled: true, url: "https://example.com/h?a=1&b=\"2\"",
                              authorization: "Bearer \"q\"\\", byEvents: true, events: [.messageStatus, .groupFlow],
                              mediaBase64: false)
        #expect(String(decoding: c.json(signingSecret: secret).serialized(), as: UTF8.self) ==
            #"{"label":"crm","enabled":true,"url":"https://example.com/h?a=1&b=\"2\"","authorization":"Bearer \"q\"\\","byEvents":true,"events":["message.status","group.flow"],"mediaBase64":false,"signingSecret":"whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}"#)
        #expect(String(decoding: c.summaryJSON.serialized(), as: UTF8.self) ==
            #"{"label":"crm","enabled":true,"url":"https://example.com/h?a=1&b=\"2\"","byEvents":true,"events":["message.status","group.flow"],"mediaBase64":false}"#)
        #expect(String(decoding: WebhookConfig.unconfigured.summaryJSON.serialized(), as: UTF8.self) ==
            #"{"label":"default","enabled":false,"url":"","byEvents":false,"events":[],"mediaBase64":false}"#)
        let off = WebhookConfig(label: label("old"), enabled: false)
        #expect(String(decoding: off.json(signingSecret: secret).serialized(), as: UTF8.self) ==
            #"{"label":"old","enabled":false,"url":"","authorization":"","byEvents":false,"events":[],"mediaBase64":false,"signingSecret":"whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}"#)
    }

    @Test func printingNeverShowsTheAuthorization() {
        let c = WebhookConfig(label: .default, enabled: true, url: "https://example.com", authorization: "Bearer hunter2")
        #expect(!"\(c)".contains("hunter2"))
        #expect(!String(reflecting: c).contains("hunter2"))
        var dumped = ""
        dump(c, to: &dumped)
        #expect(!dumped.contains("hunter2"))
        #expect("\(c)".contains("https://example.com"))
    }
}

@Suite struct WebhookInstanceFieldsTests {
    func body(_ text: String) -> JSONValue { (try? JSONParser.parse(text)) ?? .null }

    @Test func presence() {
        #expect(!WebhookConfig.hasInstanceFields(body(#"{"name":"i1"}"#)))
        #expect(!WebhookConfig.hasInstanceFields(body(#"{"name":"i1","webhook":{},"webhookBase64":true,"websocketEnabled":true}"#)))
        #expect(!WebhookConfig.hasInstanceFields(body("[]")))
        for field in ["webhookEnabled", "webhookURL", "webhookAuthorization", "webhookByEvents", "webhookEvents", "webhookMediaBase64"] {
            #expect(WebhookConfig.hasInstanceFields(body(#"{"name":"i1","\#(field)":null}"#)), "\(field)")
        }
    }

    @Test func sameRulesAsThePost() throws {
        let full = try #require(WebhookConfig.parseInstanceFields(body(#"""
            {"name":"i1","webhookEnabled":true,"webhookURL":"https://example.com/h","webhookAuthorization":"Bearer x",
             "webhookByEvents":true,"webhookEvents":["group.flow","group.flow"],"webhookMediaBase64":true,
             "url":"ignored","enabled":false,"label":"ignored"}
            """#)))
        #expect(full == WebhookConfig(label: .default, enabled: true, url: "https://example.com/h", authorization: "Bearer x",
                                      byEvents: true, events: [.groupFlow], mediaBase64: true))
        #expect(WebhookConfig.parseInstanceFields(body(#"{"webhookEnabled":false,"webhookURL":"https://x.example"}"#))
            == WebhookConfig.unconfigured)
        for invalid in [
            #"{"name":"i1"}"#, #"{"webhookURL":"https://example.com"}"#, #"{"webhookEnabled":"true"}"#,
            #"{"webhookEnabled":true}"#, #"{"webhookEnabled":true,"webhookURL":"https://u:p@example.com"}"#,
            #"{"webhookEnabled":true,"webhookURL":"https://example.com","webhookAuthorization":"a\nb"}"#,
            #"{"webhookEnabled":true,"webhookURL":"https://example.com","webhookByEvents":1}"#,
            #"{"webhookEnabled":true,"webhookURL":"https://example.com","webhookEvents":["x"]}"#,
            #"{"webhookEnabled":true,"webhookURL":"https://example.com","webhookMediaBase64":null}"#,
            #"{"webhookEnabled":false,"webhookEvents":"call.update"}"#, "[]", "null",
        ] {
            #expect((try? JSONParser.parse(invalid)) != nil, "\(invalid)")
            #expect(WebhookConfig.parseInstanceFields(body(invalid)) == nil, "\(invalid)")
        }
    }
}

@Suite struct WebhookLabelTests {
    @Test func rules() {
        for good in ["default", "a", "A-Z_a.z-0.9", ".", "..", "-", "_", String(repeating: "x", count: 64)] {
            #expect(WebhookLabel.isValid(good), "\(good)")
            #expect(WebhookLabel(good)?.name == good)
        }
        for bad in ["", "a b", "a/b", "a:b", "é", "a\u{0}", "a\n", "a+b", "a%20", String(repeating: "x", count: 65)] {
            #expect(!WebhookLabel.isValid(bad), "\(bad)")
            #expect(WebhookLabel(bad) == nil)
        }
    }

    @Test func requested() {
        #expect(WebhookLabel.requested("") == .default)
        #expect(WebhookLabel.requested("x")?.name == "x")
        #expect(WebhookLabel.requested("x y") == nil)
        #expect(WebhookLabel.requested(nil as JSONValue?) == .default)
        #expect(WebhookLabel.requested(.string("")) == .default)
        #expect(WebhookLabel.requested(.string("crm")) == WebhookLabel("crm"))
        #expect(WebhookLabel.requested(.null) == nil)
        #expect(WebhookLabel.requested(.number(1)) == nil)
        #expect(WebhookLabel.requested(.bool(true)) == nil)
    }

    @Test func sortedByteWise() {
        let names = ["b", "B", "a", "_", "-", ".", "9", "default", "a.b", "a-b"]
        #expect(names.compactMap(WebhookLabel.init).sorted().map(\.name) == ["-", ".", "9", "B", "_", "a", "a-b", "a.b", "b", "default"])
    }
}
