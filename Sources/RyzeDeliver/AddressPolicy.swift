#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address as getaddrinfo gives it.
public enum IPAddress: Equatable, Sendable, CustomStringConvertible {
    case v4(UInt32)            // host byte order: 127.0.0.1 is 0x7F000001
    case v6([UInt8])           // 16 bytes, network order

    /// A numeric address (`192.0.2.1`, `2001:db8::1`); nil for anything else.
    public init?(_ text: String) {
        var a4 = in_addr()
        if inet_pton(AF_INET, text, &a4) == 1 {
            self = .v4(UInt32(bigEndian: a4.s_addr))
            return
        }
        var a6 = in6_addr()
        if inet_pton(AF_INET6, text, &a6) == 1 {
            self = .v6(withUnsafeBytes(of: a6) { Array($0) })
            return
        }
        return nil
    }

    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch self {
        case .v4(let v):
            var a = in_addr(s_addr: v.bigEndian)
            inet_ntop(AF_INET, &a, &buffer, socklen_t(buffer.count))
        case .v6(let bytes):
            var a = in6_addr()
            withUnsafeMutableBytes(of: &a) { $0.copyBytes(from: bytes) }
            inet_ntop(AF_INET6, &a, &buffer, socklen_t(buffer.count))
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// SPEC §6.3: no requests to the deployment's own network. An address is allowed only if it is
/// ordinary public unicast: every loopback, private, shared (CGNAT), link-local, multicast,
/// unspecified, broadcast, documentation, benchmarking or otherwise reserved range is refused,
/// and so are IPv6 forms that carry a refused IPv4 address (IPv4-mapped, NAT64, 6to4).
///
/// IPv6 is an allow-list: only global unicast (`2000::/3`) is allowed, less its special blocks,
/// so any range outside it, assigned later or never, is refused by construction.
public enum AddressPolicy {
    /// (network, prefix length) of every refused IPv4 block (IANA's special-purpose registry,
    /// plus multicast and the reserved 240/4).
    static let refusedV4: [(UInt32, Int)] = [
        (0x0000_0000, 8),    // 0.0.0.0/8 "this network", incl. unspecified
        (0x0A00_0000, 8),    // 10/8 private
        (0x6440_0000, 10),   // 100.64/10 shared address space (CGNAT)
        (0x7F00_0000, 8),    // 127/8 loopback
        (0xA9FE_0000, 16),   // 169.254/16 link-local (cloud metadata lives here)
        (0xAC10_0000, 12),   // 172.16/12 private
        (0xC000_0000, 24),   // 192.0.0/24 IETF protocol assignments
        (0xC000_0200, 24),   // 192.0.2/24 TEST-NET-1
        (0xC058_6300, 24),   // 192.88.99/24 6to4 relay anycast (deprecated)
        (0xC0A8_0000, 16),   // 192.168/16 private
        (0xC612_0000, 15),   // 198.18/15 benchmarking
        (0xC633_6400, 24),   // 198.51.100/24 TEST-NET-2
        (0xCB00_7100, 24),   // 203.0.113/24 TEST-NET-3
        (0xE000_0000, 4),    // 224/4 multicast
        (0xF000_0000, 4),    // 240/4 reserved, incl. 255.255.255.255 broadcast
    ]

    public static func isAllowed(_ address: IPAddress) -> Bool {
        switch address {
        case .v4(let a):
            return !refusedV4.contains { network, bits in a >> (32 - bits) == network >> (32 - bits) }
        case .v6(let b):
            precondition(b.count == 16)
            if let embedded = embeddedV4(b) { return embedded.map { isAllowed(.v4($0)) } ?? false }
            // Only global unicast 2000::/3.
            guard b[0] & 0xE0 == 0x20 else { return false }
            let w0 = UInt16(b[0]) << 8 | UInt16(b[1])
            let w1 = UInt16(b[2]) << 8 | UInt16(b[3])
            if w0 == 0x2001 && w1 < 0x0200 { return false }     // 2001::/23 IETF protocol assignments (Teredo, ORCHID, benchmarking...)
            if w0 == 0x2001 && w1 == 0x0DB8 { return false }    // 2001:db8::/32 documentation
            if w0 & 0xFFFF == 0x3FFF && w1 < 0x1000 { return false }   // 3fff::/20 documentation
            return true
        }
    }

    /// The IPv4 address an IPv6 address stands for, when it is one of the forms that reach an
    /// IPv4 host: `::ffff:a.b.c.d` (mapped), `64:ff9b::a.b.c.d` (NAT64), `2002:AABB:CCDD::/48`
    /// (6to4). `.some(nil)`: a form always refused (`::a.b.c.d`, the deprecated compatible form,
    /// and the local-use NAT64 prefix `64:ff9b:1::/48`). nil: none of these.
    static func embeddedV4(_ b: [UInt8]) -> UInt32?? {
        func v4(at i: Int) -> UInt32 { UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3]) }
        let zeros10 = b[0..<10].allSatisfy { $0 == 0 }
        if zeros10 && b[10] == 0xFF && b[11] == 0xFF { return .some(v4(at: 12)) }
        if b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B {
            if b[4..<12].allSatisfy({ $0 == 0 }) { return .some(v4(at: 12)) }
            if b[4] == 0 && b[5] == 1 { return .some(nil) }
        }
        if b[0] == 0x20 && b[1] == 0x02 { return .some(v4(at: 2)) }
        if b[0..<12].allSatisfy({ $0 == 0 }) { return .some(nil) }   // ::/96: ::, ::1, and ::a.b.c.d
        return nil
    }
}

/// Where a delivery's host resolves to, before each attempt (getaddrinfo; blocking, on a
/// sender thread).
public struct TargetResolver: Sendable {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// The name does not resolve now (a failed attempt: it may later).
        case unresolved(String)
        /// Every address, or one of them, is refused by the address rule.
        case notAllowed

        public var description: String {
            switch self {
            case .unresolved(let m): return m
            case .notAllowed: return "target address not allowed"
            }
        }
    }

    /// With `allowPrivate` (`--allow-private-targets`) nothing is refused.
    public let allowPrivate: Bool
    /// How names are turned into addresses; getaddrinfo unless a test says otherwise.
    let lookup: @Sendable (String) -> Result<[IPAddress], Failure>

    public init(allowPrivate: Bool) {
        self.allowPrivate = allowPrivate
        lookup = TargetResolver.getaddrinfoLookup
    }

    init(allowPrivate: Bool, lookup: @escaping @Sendable (String) -> Result<[IPAddress], Failure>) {
        self.allowPrivate = allowPrivate
        self.lookup = lookup
    }

    /// The addresses to connect to for `host` (a name, a dotted quad, or an IPv6 literal
    /// without brackets), in getaddrinfo's order (RFC 6724). A host with any refused address is
    /// refused as a whole: a name that also points inside is not one to send to, whichever of
    /// its addresses a client would end up on.
    public func resolve(_ host: String) -> Result<[IPAddress], Failure> {
        switch lookup(host) {
        case .failure(let f): return .failure(f)
        case .success(let addresses):
            guard !addresses.isEmpty else { return .failure(.unresolved("no address for \(host)")) }
            if !allowPrivate && !addresses.allSatisfy(AddressPolicy.isAllowed) { return .failure(.notAllowed) }
            return .success(addresses)
        }
    }

    static let getaddrinfoLookup: @Sendable (String) -> Result<[IPAddress], Failure> = { host in
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, nil, &hints, &result)
        guard rc == 0 else { return .failure(.unresolved("cannot resolve \(host): \(String(cString: gai_strerror(rc)))")) }
        defer { freeaddrinfo(result) }
        var out: [IPAddress] = []
        var p = result
        while let ai = p {
            if ai.pointee.ai_family == AF_INET, let sa = ai.pointee.ai_addr {
                let a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
                out.append(.v4(UInt32(bigEndian: a)))
            } else if ai.pointee.ai_family == AF_INET6, let sa = ai.pointee.ai_addr {
                let bytes = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { s in withUnsafeBytes(of: s.pointee.sin6_addr) { Array($0) } }
                out.append(.v6(bytes))
            }
            p = ai.pointee.ai_next
        }
        var unique: [IPAddress] = []
        for a in out where !unique.contains(a) { unique.append(a) }
        return .success(unique)
    }
}
