import Testing
@testable import RyzeCore

@Suite struct WebhookURLTests {
    @Test(arguments: [
        "http://example.com", "https://example.com", "https://example.com/", "https://example.com/hooks/ryze",
        "HTTPS://Example.COM/Path", "hTtP://example.com", "https://example.com:8443/x", "http://example.com:1",
        "http://example.com:65535", "https://example.com?token=abc&x=1", "https://example.com/a?b=c?d/e",
        "https://example.com/a%2Fb%20c", "https://example.com/a;b=c/d:e@f!$&'()*+,~", "https://example.com/@user",
        "http://localhost", "http://localhost:8080/hook", "http://my_service:8080/hook", "http://a",
        "https://example.com.", "https://sub-domain.example-site.co.uk/x", "http://123.example", "http://a.0xg",
        "http://127.0.0.1/", "http://0.0.0.0", "http://255.255.255.255:80/", "http://10.0.0.1:9000/h",
        "http://[::1]/", "http://[::1]:8080/x", "http://[::]", "http://[2001:db8::8a2e:370:7334]/x",
        "http://[2001:0db8:0000:0000:0000:ff00:0042:8329]", "http://[1:2:3:4:5:6:7::]", "http://[::2:3:4:5:6:7:8]",
        "http://[::ffff:192.0.2.1]", "http://[1:2:3:4:5:6:1.2.3.4]", "http://[::1.2.3.4]", "http://[FE80::1]",
    ])
    func accepted(_ url: String) {
        #expect(WebhookURL.validate(url) == url)
    }

    @Test(arguments: [
        // scheme
        "", "example.com", "//example.com", "ftp://example.com", "ws://example.com", "file:///etc/passwd",
        "http:/example.com", "http:example.com", "http:///example.com", "https//example.com", "httpx://a",
        " http://example.com", "javascript:alert(1)", "mailto:a@b.c",
        // authority: userinfo, empty host, ports
        "http://user@example.com", "http://user:password@example.com/", "http://:pw@example.com",
        "http://@example.com", "http://example.com@evil.com", "http://a@b@c", "http://", "http://:80",
        "http://?x", "http:///", "http://example.com:", "http://example.com:0", "http://example.com:65536",
        "http://example.com:080", "http://example.com:99999", "http://example.com:-1", "http://example.com:8a",
        "http://example.com:80:80", "http://example.com:123456",
        // host characters and labels
        "http://exa mple.com", "http://exämple.com", "http://example..com", "http://.example.com",
        "http://example.com..", "http://.", "http://ex%61mple.com", "http://example.com!", "http://a,b",
        "http://a+b.com", "http://a~b.com", "http://" + String(repeating: "a", count: 64) + ".com",
        "http://" + Array(repeating: String(repeating: "a", count: 63), count: 4).joined(separator: "."),
        "http://example.com\\@evil.com/", "http://example.com\\", "http://a\tb",
        // numeric hosts that are not canonical IPv4
        "http://127.1", "http://0x7f.0.0.1", "http://0x7f000001", "http://2130706433", "http://0177.0.0.1",
        "http://01.2.3.4", "http://256.0.0.1", "http://1.2.3", "http://1.2.3.4.5", "http://1.2.3.4.",
        "http://example.123", "http://a.0x", "http://a.0X1f",
        // IPv6
        "http://[]", "http://[::1", "http://::1", "http://[::1]x", "http://[::1]:", "http://[::1]:0",
        "http://[:::]", "http://[1::2::3]", "http://[1:2:3:4:5:6:7:8:9]", "http://[1:2:3:4:5:6:7]",
        "http://[1:2:3:4:5:6:7::8]", "http://[12345::1]", "http://[::g]", "http://[fe80::1%25eth0]",
        "http://[fe80::1%eth0]", "http://[:1::]", "http://[1::2:]", "http://[1.2.3.4::]", "http://[::1.2.3]",
        "http://[::1.2.3.4:5]", "http://[v1.abc]", "http://[::1]]", "http://[[::1]]", "http://[1:2:3:4:5:6:7:1.2.3.4]",
        "http://[::256.1.1.1]", "http://[::01.1.1.1]",
        // path and query characters
        "http://example.com/a b", "http://example.com/a\tb", "http://example.com/a\nb", "http://example.com/\r",
        "http://example.com/\u{7F}", "http://example.com/\u{0}", "http://example.com/é", "http://example.com/\u{A0}",
        "http://example.com/\u{2028}", "http://example.com#frag", "http://example.com/#", "http://example.com/a#b",
        "http://example.com/a\\b", "http://example.com/<x>", "http://example.com/\"", "http://example.com/{x}",
        "http://example.com/a|b", "http://example.com/a^b", "http://example.com/`", "http://example.com/?a[]=1",
        "http://example.com/%", "http://example.com/%2", "http://example.com/%zz", "http://example.com/%g0",
        "http://example.com/x ", "http://example.com\n", "http://example.com/x\r\nHost: evil",
    ])
    func refused(_ url: String) {
        #expect(WebhookURL.validate(url) == nil)
    }

    @Test func lengthLimitIsInBytes() {
        let base = "https://example.com/"
        let exact = base + String(repeating: "a", count: WebhookURL.maxBytes - base.utf8.count)
        #expect(exact.utf8.count == 2048)
        #expect(WebhookURL.validate(exact) == exact)
        #expect(WebhookURL.validate(exact + "a") == nil)
        // Percent-encoded non-ASCII counts as the bytes sent.
        let encoded = base + String(repeating: "%C3%A9", count: 338)
        #expect(encoded.utf8.count == 2048)
        #expect(WebhookURL.validate(encoded) == encoded)
        #expect(WebhookURL.validate(encoded + "a") == nil)
    }

    @Test func hostLengthLimits() {
        let label63 = String(repeating: "a", count: 63)
        let name253 = [label63, label63, label63, String(repeating: "b", count: 61)].joined(separator: ".")
        #expect(name253.utf8.count == 253)
        #expect(WebhookURL.validate("http://\(name253)/") != nil)
        #expect(WebhookURL.validate("http://\(name253)./") != nil)
        #expect(WebhookURL.validate("http://\(name253)b/") == nil)
        #expect(WebhookURL.validate("http://\(label63).com") != nil)
    }

    @Test func returnsTheStringUnchanged() {
        let url = "HTTPS://Example.COM:443/A/../b/%7e?Q=1&q=2"
        #expect(WebhookURL.validate(url) == url)
    }
}
