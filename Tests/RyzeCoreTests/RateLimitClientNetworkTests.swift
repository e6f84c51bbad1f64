import Foundation
import Testing
@testable import RyzeCore

/// Which network a request without a valid token is charged to.
@Suite struct RateLimitClientNetworkTests {
    func network(_ a: String, v4: Int = 32, v6: Int = 64) -> ClientNetwork {
        ClientNetwork(remoteAddress: a, prefixes: .init(ipv4: v4, ipv6: v6))
    }

    @Test func ipv6ClientsAreKeyedByTheirSlash64() {
        #expect(network("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == network("2001:db8:1:2::1"))
        #expect(network("2001:db8:1:2::1") == .ipv6(high: 0x2001_0DB8_0001_0002, low: 0, prefix: 64))
        #expect(network("2001:db8:1:3::1") != network("2001:db8:1:2::1"))
        // One address, any spelling.
        #expect(network("2001:DB8:1:2:0:0:0:1") == network("2001:db8:1:2::ffff"))
        #expect(network("::1") == network("::2"))
    }

    @Test func ipv4ClientsAreKeyedByTheirAddress() {
        #expect(network("192.0.2.1") == .ipv4(0xC000_0201, prefix: 32))
        #expect(network("192.0.2.1") != network("192.0.2.2"))
    }

    @Test func ipv4MappedIPv6IsTheIPv4Client() {
        #expect(network("::ffff:192.0.2.1") == network("192.0.2.1"))
        #expect(network("::FFFF:c000:201") == network("192.0.2.1"))
        #expect(network("::ffff:192.0.2.1", v4: 24) == .ipv4(0xC000_0200, prefix: 24))
        // Not mapped: the deprecated IPv4-compatible form and NAT64 are IPv6 networks.
        #expect(network("::192.0.2.1") == .ipv6(high: 0, low: 0, prefix: 64))
        #expect(network("64:ff9b::192.0.2.1") == .ipv6(high: 0x0064_FF9B_0000_0000, low: 0, prefix: 64))
    }

    @Test func prefixLengthsAreTheOperators() {
        #expect(network("192.0.2.1", v4: 24) == network("192.0.2.254", v4: 24))
        #expect(network("192.0.2.1", v4: 24) != network("192.0.3.1", v4: 24))
        #expect(network("198.51.100.7", v4: 20) == .ipv4(0xC633_6000, prefix: 20))
        #expect(network("2001:db8:0:ff00::1", v6: 56) == network("2001:db8:0:ff11::", v6: 56))
        #expect(network("2001:db8:0:ff00::1", v6: 56) != network("2001:db8:0:1000::", v6: 56))
        #expect(network("2001:db8:0:fff0::", v6: 60) == network("2001:db8:0:ffff::9", v6: 60))
        #expect(network("2001:db8:0:ffe0::", v6: 60) != network("2001:db8:0:fff0::", v6: 60))
        #expect(network("2001:db8::1:2:3:4", v6: 96) == .ipv6(high: 0x2001_0DB8_0000_0000, low: 0x0001_0002_0000_0000, prefix: 96))
        #expect(network("2001:db8::1", v6: 128) != network("2001:db8::2", v6: 128))
        #expect(network("2001:db8::1", v6: 1) == network("7fff::", v6: 1))
        #expect(network("10.0.0.1", v4: 1) == .ipv4(0, prefix: 1))
        // The same bits under another prefix length are another network.
        #expect(network("192.0.2.0", v4: 24) != network("192.0.2.0"))
    }

    @Test func whatDoesNotParseIsKeyedByItsText() {
        for raw in ["unix:", "", "fe80::1%eth0", "1.2.3", "192.0.2.1:443", "[2001:db8::1]", "garbage"] {
            #expect(network(raw) == .unparsed(raw))
        }
    }

    @Test func theLimiterChargesTheNetwork() throws {
        let dir = TempDirectory()
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        let table = try SharedRateTable(path: dir.path + "/rl", capacity: 1024)
        let clock = ManualClock()
        let limiter = RateLimiter(table: table, limits: .init(perAddress: 2), prefixes: .init(ipv4: 32, ipv6: 64), clock: clock.wallClock)
        #expect(try limiter.consume(.address("2001:db8:5:6::1")).allowed)
        #expect(try limiter.consume(.address("2001:db8:5:6:ffff::2")).allowed)
        #expect(try !limiter.consume(.address("2001:db8:5:6:1234:5678:9abc:def0")).allowed)
        #expect(try limiter.consume(.address("2001:db8:5:7::1")).remaining == 1)
        #expect(try limiter.consume(.address("198.51.100.7")).allowed)
        #expect(try limiter.consume(.address("::ffff:198.51.100.7")).allowed)
        #expect(try !limiter.consume(.address("198.51.100.7")).allowed)
        #expect(try limiter.consume(.address("198.51.100.8")).remaining == 1)
        #expect(try limiter.consume(.address("unix:")).remaining == 1)
        // Keys of one network agree across tables over one file (every worker of a deployment).
        let other = try SharedRateTable(path: dir.path + "/rl", capacity: 1024)
        #expect(other.key(network: network("2001:db8:5:6::9")) == table.key(network: network("2001:db8:5:6::1")))
    }
}
