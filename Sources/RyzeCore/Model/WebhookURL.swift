/// SPEC §4's rule for a webhook `url`: an absolute `http://` or `https://` URL with a host, no
/// `user:password@`, at most 2,048 bytes.
///
/// Hand-written rather than Foundation's `URL`, whose leniency differs between platforms and
/// versions. It accepts a strict subset of RFC 3986's absolute-URI (which has no fragment):
///
///     scheme "://" host [ ":" port ] path-and-query
///
/// - scheme: `http` or `https`, any case.
/// - host: a registered name of letters, digits, `-`, `_` and `.` (no empty label, labels of at
///   most 63 bytes, at most 253 bytes, one trailing dot allowed); or a dotted-quad IPv4 address in
///   its one canonical form; or an IPv6 address in brackets (no zone identifier). A name whose
///   last label is numeric (`127.1`, `0x7f.1`, `2130706433`, `example.123`) is refused unless it
///   is that canonical IPv4 form: WHATWG parsers and `inet_aton` read such names as addresses, and
///   the deliverer's private-address check must see the address every client would see.
/// - port: 1 to 65535, decimal, no leading zero; a `:` with no port is refused.
/// - no `@` anywhere in the authority (so no userinfo at all), no percent-encoding in the host.
/// - path and query: RFC 3986 `pchar`s, `/` and `?`, with every `%` followed by two hex digits.
///   Everything else is refused: controls, spaces, non-ASCII (send it percent-encoded), `#`
///   (absolute URIs have no fragment, and none would reach the receiver), and the characters
///   RFC 3986 excludes (`"<>\^`{|}`, and `[`/`]` outside the host). The backslash in particular
///   is a path separator to WHATWG parsers, which is how `http://a\@b/` tricks a naive check.
public enum WebhookURL {
    public static let maxBytes = 2048

    /// The URL exactly as given when it follows the rule above, else nil. Never normalises:
    /// what is stored and returned is what the client sent.
    public static func validate(_ s: String) -> String? {
        let u = Array(s.utf8)
        guard u.count <= maxBytes else { return nil }
        let start: Int
        if hasPrefix(u, "https://") {
            start = 8
        } else if hasPrefix(u, "http://") {
            start = 7
        } else {
            return nil
        }
        var end = start
        while end < u.count, u[end] != UInt8(ascii: "/"), u[end] != UInt8(ascii: "?") { end += 1 }
        guard isAuthority(u[start..<end]), isPathAndQuery(u[end...]) else { return nil }
        return s
    }

    // MARK: - Scheme

    /// Case-insensitive over the scheme only; the `://` that follows is matched exactly.
    private static func hasPrefix(_ u: [UInt8], _ prefix: StaticString) -> Bool {
        let p = UnsafeBufferPointer(start: prefix.utf8Start, count: prefix.utf8CodeUnitCount)
        guard u.count >= p.count else { return false }
        for k in 0..<p.count {
            let c = u[k]
            let lower = c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") ? c | 0x20 : c
            if lower != p[k] { return false }
        }
        return true
    }

    // MARK: - Authority

    private static func isAuthority(_ a: ArraySlice<UInt8>) -> Bool {
        guard let first = a.first else { return false }
        let hostEnd: Int
        if first == UInt8(ascii: "[") {
            guard let close = a.firstIndex(of: UInt8(ascii: "]")), isIPv6(a[(a.startIndex + 1)..<close]) else { return false }
            hostEnd = close + 1
        } else {
            hostEnd = a.firstIndex(of: UInt8(ascii: ":")) ?? a.endIndex
            guard isRegNameOrIPv4(a[a.startIndex..<hostEnd]) else { return false }
        }
        if hostEnd == a.endIndex { return true }
        guard a[hostEnd] == UInt8(ascii: ":") else { return false }   // e.g. `[::1]x`
        return isPort(a[(hostEnd + 1)...])
    }

    private static func isPort(_ p: ArraySlice<UInt8>) -> Bool {
        guard !p.isEmpty, p.count <= 5, p.first != UInt8(ascii: "0"), p.allSatisfy(isDigit) else { return false }
        let value = p.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        return value <= 65535
    }

    private static func isRegNameOrIPv4(_ h: ArraySlice<UInt8>) -> Bool {
        guard !h.isEmpty, h.count <= 254 else { return false }
        var labels = h.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        let trailingDot = labels.count > 1 && labels.last!.isEmpty
        if trailingDot { labels.removeLast() }
        guard labels.allSatisfy({ !$0.isEmpty && $0.count <= 63 && $0.allSatisfy(isHostByte) }) else { return false }
        guard h.count - (trailingDot ? 1 : 0) <= 253 else { return false }
        if endsInNumber(labels.last!) {
            return !trailingDot && isIPv4(labels)
        }
        return true
    }

    /// WHATWG's "ends in a number": all decimal digits, or `0x` followed by hex digits (or none).
    private static func endsInNumber(_ label: ArraySlice<UInt8>) -> Bool {
        if label.allSatisfy(isDigit) { return true }
        guard label.count >= 2, label.first == UInt8(ascii: "0"),
              label[label.startIndex + 1] | 0x20 == UInt8(ascii: "x") else { return false }
        return label.dropFirst(2).allSatisfy(isHexDigit)
    }

    /// Exactly four decimal parts of 0 to 255, without leading zeros.
    private static func isIPv4(_ parts: [ArraySlice<UInt8>]) -> Bool {
        parts.count == 4 && parts.allSatisfy(isIPv4Part)
    }

    private static func isIPv4Part(_ p: ArraySlice<UInt8>) -> Bool {
        guard !p.isEmpty, p.count <= 3, p.allSatisfy(isDigit) else { return false }
        if p.count > 1 && p.first == UInt8(ascii: "0") { return false }
        return p.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) } <= 255
    }

    /// RFC 4291 text form: eight groups of 1 to 4 hex digits, or fewer around one `::` that
    /// stands for at least one zero group; the last 32 bits may be written as dotted-quad IPv4.
    private static func isIPv6(_ s: ArraySlice<UInt8>) -> Bool {
        let colon = UInt8(ascii: ":")
        var doubleColon: Int?
        var k = s.startIndex
        while k + 1 < s.endIndex {
            if s[k] == colon && s[k + 1] == colon {
                guard doubleColon == nil else { return false }
                doubleColon = k
                k += 2
            } else {
                k += 1
            }
        }
        // Group lists on each side of `::`; an empty side has no groups, an empty group is invalid.
        func groups(_ part: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
            part.isEmpty ? [] : part.split(separator: colon, omittingEmptySubsequences: false)
        }
        let all: [ArraySlice<UInt8>]
        let leftCount: Int
        if let d = doubleColon {
            let left = groups(s[s.startIndex..<d])
            let right = groups(s[(d + 2)...])
            all = left + right
            leftCount = left.count
        } else {
            all = groups(s)
            leftCount = all.count
        }
        guard !all.isEmpty || doubleColon != nil else { return false }
        var width = 0
        for (n, g) in all.enumerated() {
            if n == all.count - 1, g.contains(UInt8(ascii: ".")) {
                // Embedded IPv4 only in the last place, and not as the only thing before `::`.
                guard doubleColon == nil || n >= leftCount,
                      isIPv4(g.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)) else { return false }
                width += 2
            } else {
                guard !g.isEmpty, g.count <= 4, g.allSatisfy(isHexDigit) else { return false }
                width += 1
            }
        }
        return doubleColon == nil ? width == 8 : width <= 7
    }

    // MARK: - Path and query

    private static func isPathAndQuery(_ rest: ArraySlice<UInt8>) -> Bool {
        var k = rest.startIndex
        while k < rest.endIndex {
            let c = rest[k]
            if c == UInt8(ascii: "%") {
                guard k + 2 < rest.endIndex, isHexDigit(rest[k + 1]), isHexDigit(rest[k + 2]) else { return false }
                k += 3
                continue
            }
            guard isPathOrQueryByte(c) else { return false }
            k += 1
        }
        return true
    }

    /// RFC 3986: unreserved / sub-delims / `:` / `@` (pchar without pct-encoded), `/` and `?`.
    private static func isPathOrQueryByte(_ c: UInt8) -> Bool {
        if isHostByte(c) || c == UInt8(ascii: "~") { return true }
        switch c {
        case UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("),
             UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"),
             UInt8(ascii: "="), UInt8(ascii: ":"), UInt8(ascii: "@"), UInt8(ascii: "/"), UInt8(ascii: "?"):
            return true
        default:
            return false
        }
    }

    // MARK: - Bytes

    /// Letters, digits, `-`, `.`, `_`: what a resolvable host name is made of.
    private static func isHostByte(_ c: UInt8) -> Bool {
        isDigit(c) || (c | 0x20 >= UInt8(ascii: "a") && c | 0x20 <= UInt8(ascii: "z"))
            || c == UInt8(ascii: "-") || c == UInt8(ascii: ".") || c == UInt8(ascii: "_")
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    private static func isHexDigit(_ c: UInt8) -> Bool {
        isDigit(c) || (c | 0x20 >= UInt8(ascii: "a") && c | 0x20 <= UInt8(ascii: "f"))
    }
}
