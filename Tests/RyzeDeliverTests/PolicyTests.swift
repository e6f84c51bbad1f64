import Testing
@testable import RyzeDeliver

@Suite struct AddressPolicyTests {
    func allowed(_ text: String) -> Bool { AddressPolicy.isAllowed(IPAddress(text)!) }

    @Test func publicAddressesAreAllowed() {
        for a in ["1.1.1.1", "8.8.8.8", "93.184.216.34", "100.63.255.255", "100.128.0.0", "172.15.255.255", "172.32.0.0",
                  "192.0.1.255", "192.0.3.0", "192.169.0.1", "198.17.255.255", "198.20.0.0", "223.255.255.255",
                  "2606:4700:4700::1111", "2a00:1450:4001:82b::200e", "2001:4860:4860::8888", "::ffff:8.8.8.8",
                  "64:ff9b::808:808", "2002:808:808::1", "2001:200::1"] {
            #expect(allowed(a), "\(a)")
        }
    }

    @Test func everyInternalOrReservedRangeIsRefused() {
        let refused = [
            "0.0.0.0", "0.1.2.3", "10.0.0.1", "10.255.255.255", "100.64.0.1", "100.127.255.254", "127.0.0.1", "127.255.255.254",
            "169.254.169.254", "172.16.0.1", "172.31.255.255", "192.0.0.8", "192.0.2.1", "192.88.99.1", "192.168.1.1",
            "198.18.0.1", "198.19.255.255", "198.51.100.7", "203.0.113.9", "224.0.0.1", "239.255.255.250", "240.0.0.1",
            "255.255.255.255",
            // IPv6: unspecified, loopback, the deprecated compatible form, mapped and NAT64 forms of refused IPv4,
            // ULA, link-local, site-local, multicast, documentation, Teredo, ORCHID, benchmarking, discard, local NAT64.
            "::", "::1", "::127.0.0.1", "::ffff:127.0.0.1", "::ffff:10.1.2.3", "::ffff:169.254.169.254", "64:ff9b::7f00:1",
            "64:ff9b::a00:1", "64:ff9b:1::808:808", "fc00::1", "fd12:3456:789a::1", "fe80::1", "febf::1", "fec0::1", "ff02::1",
            "ff05::1:3", "2001:db8::1", "2001::1", "2001:10::1", "2001:2::1", "100::1", "3fff::1", "3fff:fff::1",
            "2002:7f00:1::1", "2002:a00:1::", "4000::1", "5f00::1",
        ]
        for a in refused { #expect(!allowed(a), "\(a)") }
    }

    @Test func aHostWithAnyRefusedAddressIsRefusedAsAWhole() {
        let mixed = TargetResolver(allowPrivate: false) { _ in .success([IPAddress("93.184.216.34")!, IPAddress("10.0.0.1")!]) }
        #expect(mixed.resolve("h") == .failure(.notAllowed))
        let open = TargetResolver(allowPrivate: true) { _ in .success([IPAddress("10.0.0.1")!, IPAddress("93.184.216.34")!]) }
        #expect(open.resolve("h") == .success([IPAddress("10.0.0.1")!, IPAddress("93.184.216.34")!]))
        let none = TargetResolver(allowPrivate: false) { _ in .success([]) }
        #expect(none.resolve("h") == .failure(.unresolved("no address for h")))
    }

    @Test func getaddrinfoResolvesLiteralsAndLocalNames() {
        let r = TargetResolver(allowPrivate: false)
        #expect(r.resolve("127.0.0.1") == .failure(.notAllowed))
        #expect(r.resolve("::1") == .failure(.notAllowed))
        #expect(TargetResolver(allowPrivate: true).resolve("127.0.0.1") == .success([.v4(0x7F00_0001)]))
        #expect(r.resolve("localhost") == .failure(.notAllowed))
        guard case .failure(.unresolved)? = Optional(r.resolve("no-such-host.invalid")) else {
            Issue.record("an unknown name is a failed resolution"); return
        }
    }

    @Test func addressesPrintAsTheyAreWritten() {
        #expect(IPAddress("192.0.2.1")!.description == "192.0.2.1")
        #expect(IPAddress("2001:DB8:0::1")!.description == "2001:db8::1")
        #expect(IPAddress("example.com") == nil)
    }
}

@Suite struct RetryPolicyTests {
    @Test func theDefaultScheduleIsTenAttempts() throws {
        let p = try #require(RetryPolicy.parse(RetryPolicy.defaultSchedule))
        #expect(p.waits == [5, 300, 1800, 7200, 18_000, 36_000, 50_400, 72_000, 86_400])
        #expect(p.attempts == 10)
        #expect(p.wait(afterAttempt: 10, retryAfter: nil, random: 0.5) == nil)
        #expect(RetryPolicy.parse("1s, 1.5s ,2")?.waits == [1, 1.5, 2])
        for bad in ["", "5s,", "x", "5w", "-1s", "0s", "1s,,2s"] { #expect(RetryPolicy.parse(bad) == nil, "\(bad)") }
    }

    @Test func waitsAreJitteredByTenPercent() throws {
        let p = RetryPolicy(waits: [100, 300])
        #expect(p.wait(afterAttempt: 1, retryAfter: nil, random: 0) == 90)
        #expect(p.wait(afterAttempt: 1, retryAfter: nil, random: 0.5) == 100)
        #expect(abs(p.wait(afterAttempt: 2, retryAfter: nil, random: 0.999_999)! - 330) < 0.001)
        #expect(p.wait(afterAttempt: 0, retryAfter: nil, random: 0) == nil)
        #expect(p.wait(afterAttempt: 3, retryAfter: nil, random: 0) == nil)
    }

    @Test func aLongerRetryAfterIsHonouredUpToADay() {
        let p = RetryPolicy(waits: [5, 300])
        #expect(p.wait(afterAttempt: 1, retryAfter: 60, random: 0.5) == 60)
        #expect(p.wait(afterAttempt: 1, retryAfter: 2, random: 0.5) == 5)
        #expect(p.wait(afterAttempt: 1, retryAfter: 10 * 86_400, random: 0.5) == 86_400)
        // Not after the last attempt: Retry-After does not add attempts.
        #expect(p.wait(afterAttempt: 3, retryAfter: 60, random: 0.5) == nil)
    }

    @Test func retryAfterReadsSecondsAndHTTPDates() {
        let now = 784_111_777.0   // Sun, 06 Nov 1994 08:49:37 GMT
        #expect(RetryPolicy.retryAfterSeconds("120", now: now) == 120)
        #expect(RetryPolicy.retryAfterSeconds(" 0 ", now: now) == 0)
        #expect(RetryPolicy.retryAfterSeconds("Sun, 06 Nov 1994 08:51:37 GMT", now: now) == 120)
        #expect(RetryPolicy.retryAfterSeconds("Sunday, 06-Nov-94 08:50:37 GMT", now: now) == 60)
        #expect(RetryPolicy.retryAfterSeconds("Sun Nov  6 08:49:47 1994", now: now) == 10)
        #expect(RetryPolicy.retryAfterSeconds("Sat, 05 Nov 1994 08:49:37 GMT", now: now) == 0)
        #expect(RetryPolicy.retryAfterSeconds("99999999999", now: now)! > 86_400)
        for bad in ["", "-5", "1.5", "soon", "Sun, 06 Nov 1994 25:00:00 GMT", "Sun, 06 Nov 1994 08:49:37 CET"] {
            #expect(RetryPolicy.retryAfterSeconds(bad, now: now) == nil, "\(bad)")
        }
        #expect(HTTPDate.parse("Thu, 01 Jan 1970 00:00:00 GMT") == 0)
        #expect(HTTPDate.parse("Tue, 29 Feb 2028 12:00:00 GMT") == 1_835_438_400)
    }

    @Test func durations() {
        #expect(DurationText.parse("90") == 90)
        #expect(DurationText.parse("30s") == 30)
        #expect(DurationText.parse("5m") == 300)
        #expect(DurationText.parse("2h") == 7200)
        #expect(DurationText.parse("7d") == 604_800)
        #expect(DurationText.parse("0.5s") == 0.5)
        for bad in ["", "s", "5 m", "5x", "-5m", "1e3", "inf"] { #expect(DurationText.parse(bad) == nil, "\(bad)") }
    }
}

@Suite struct EndpointTests {
    @Test func endpointsAreSchemeHostAndPort() {
        #expect(Endpoint(url: "https://Hooks.Example.com/a/b?c")?.description == "https://hooks.example.com:443")
        #expect(Endpoint(url: "http://hooks.example.com/x") == Endpoint(url: "http://hooks.example.com:80/y/message.exchange"))
        #expect(Endpoint(url: "http://hooks.example.com:8080/") != Endpoint(url: "http://hooks.example.com/"))
        #expect(Endpoint(url: "https://hooks.example.com/") != Endpoint(url: "http://hooks.example.com/"))
        #expect(Endpoint(url: "http://[2001:db8::1]:9/")?.host == "2001:db8::1")
        #expect(Endpoint(url: "http://[2001:db8::1]:9/")?.description == "http://[2001:db8::1]:9")
        for bad in ["ftp://x/", "http:/x", "http://", "http://u:p@x/", "http://x:0/", "http://x:99999/", "http://[::1/"] {
            #expect(Endpoint(url: bad) == nil, "\(bad)")
        }
    }

    @Test func inFlightIsBoundedPerEndpoint() {
        var t = EndpointTable(perEndpoint: 2, pauseAfter: 3)
        let a = Endpoint(url: "http://a/")!, b = Endpoint(url: "http://b/")!
        t.started(a); t.started(a)
        #expect(!t.mayStart(a, now: 0) && t.mayStart(b, now: 0))
        t.finished(a, .succeeded)
        #expect(t.mayStart(a, now: 0))
        t.finished(a, .noRequest)
        #expect(t.states.isEmpty, "nothing left to remember")
    }

    @Test func anEndpointThatKeepsFailingIsPausedUntilItsNextRetry() {
        var t = EndpointTable(perEndpoint: 4, pauseAfter: 3)
        let a = Endpoint(url: "http://a/")!
        for due: UInt64 in [100, 200] {
            t.started(a)
            t.finished(a, .failed(nextDue: due))
            #expect(t.mayStart(a, now: 10))
        }
        t.started(a)
        t.finished(a, .failed(nextDue: 150))
        // The third failure in a row: paused until the latest failure's retry (never shortened).
        #expect(!t.mayStart(a, now: 10) && t.pausedUntil(a, now: 10) == 150)
        t.started(a)
        t.finished(a, .failed(nextDue: 500))
        #expect(t.pausedUntil(a, now: 10) == 500 && t.mayStart(a, now: 500))
        // A success ends the pause and the run.
        t.started(a)
        t.finished(a, .succeeded)
        #expect(t.mayStart(a, now: 10) && t.states.isEmpty)
        // A refused target made no request: it neither counts nor ends a run.
        for _ in 0..<5 { t.started(a); t.finished(a, .noRequest) }
        #expect(t.mayStart(a, now: 0))
    }
}
