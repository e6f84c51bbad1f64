#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The network a request without a valid token is charged to (SPEC §3, "per client address").
///
/// An IPv6 client usually holds a whole /64 and picks addresses in it at will, so keying by the
/// full address would hand it 2^64 buckets; an IPv4 client holds one address. The prefixes are
/// the operator's (`serve --anon-ipv4-prefix`, `--anon-ipv6-prefix`). An IPv4-mapped IPv6 address
/// (`::ffff:a.b.c.d`, what a dual-stack socket reports for an IPv4 peer) is that IPv4 client. What
/// does not parse (a unix-socket peer, a zone index) is keyed by its raw text, as before.
///
/// Two spellings of one address (`2001:db8::1`, `2001:DB8:0::1`) are one network: only the masked
/// bits count.
public enum ClientNetwork: Hashable, Sendable {
    /// The address with every bit past the prefix cleared.
    case ipv4(UInt32, prefix: Int)
    case ipv6(high: UInt64, low: UInt64, prefix: Int)
    case unparsed(String)

    public struct Prefixes: Sendable, Equatable {
        public var ipv4: Int
        public var ipv6: Int

        public static let ipv4Range = 1...32
        public static let ipv6Range = 1...128

        public init(ipv4: Int = 32, ipv6: Int = 64) {
            precondition(Prefixes.ipv4Range.contains(ipv4) && Prefixes.ipv6Range.contains(ipv6))
            self.ipv4 = ipv4
            self.ipv6 = ipv6
        }
    }

    public init(remoteAddress: String, prefixes: Prefixes = Prefixes()) {
        if let v4 = ClientNetwork.parseIPv4(remoteAddress) {
            self = .ipv4(ClientNetwork.masked(v4, prefixes.ipv4), prefix: prefixes.ipv4)
        } else if let (high, low) = ClientNetwork.parseIPv6(remoteAddress) {
            if high == 0 && low >> 32 == 0xFFFF {
                self = .ipv4(ClientNetwork.masked(UInt32(truncatingIfNeeded: low), prefixes.ipv4), prefix: prefixes.ipv4)
            } else {
                let p = prefixes.ipv6
                self = p <= 64
                    ? .ipv6(high: high & ~(UInt64.max >> p), low: 0, prefix: p)
                    : .ipv6(high: high, low: low & ~(UInt64.max >> (p - 64)), prefix: p)
            }
        } else {
            self = .unparsed(remoteAddress)
        }
    }

    static func masked(_ a: UInt32, _ prefix: Int) -> UInt32 { a & ~(UInt32.max >> prefix) }

    /// Dotted quad only (inet_pton's AF_INET), host byte order.
    static func parseIPv4(_ s: String) -> UInt32? {
        var a = in_addr()
        guard s.withCString({ inet_pton(AF_INET, $0, &a) }) == 1 else { return nil }
        return UInt32(bigEndian: a.s_addr)
    }

    /// The 128 bits as two host-order halves.
    static func parseIPv6(_ s: String) -> (UInt64, UInt64)? {
        var a = in6_addr()
        guard s.withCString({ inet_pton(AF_INET6, $0, &a) }) == 1 else { return nil }
        return withUnsafeBytes(of: &a) { b in
            (b.loadUnaligned(fromByteOffset: 0, as: UInt64.self).bigEndian,
             b.loadUnaligned(fromByteOffset: 8, as: UInt64.self).bigEndian)
        }
    }
}
