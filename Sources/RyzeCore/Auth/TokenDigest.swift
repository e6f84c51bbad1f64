import Crypto

/// SHA-256 of a token: the only form in which a token is ever stored, compared or used as a key.
public struct TokenDigest: Hashable, Sendable, CustomStringConvertible {
    public var w0, w1, w2, w3: UInt64

    public init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        (self.w0, self.w1, self.w2, self.w3) = (w0, w1, w2, w3)
    }

    public init(of token: String) {
        var token = token
        let d = token.withUTF8 { SHA256.hash(data: UnsafeRawBufferPointer($0)) }
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        d.withUnsafeBytes { raw in
            words = (
                raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
            )
        }
        (w0, w1, w2, w3) = words
    }

    /// As a dictionary key (the state's token table, looked up on every request): a digest is
    /// SHA-256 output, so each of its words is already uniform, and a client that chooses an
    /// instance's token still cannot choose its digest's bits without brute force. One word
    /// through a bijective mixer keyed by the table's seed and a per-process random key (as
    /// Hasher's own seed is) is then as good a bucket hash as SipHash over all 32 bytes: which
    /// digests share a bucket is unknown outside the process. A few instructions instead of about
    /// 450 per lookup. `==` still compares all four words.
    public func hash(into hasher: inout Hasher) { hasher.combine(w0) }

    public func _rawHashValue(seed: Int) -> Int {
        var h = w0 ^ UInt64(UInt(bitPattern: seed)) ^ TokenDigest.hashKey
        h = (h ^ (h >> 32)) &* 0xD6E8_FEB8_6659_FD93
        h = (h ^ (h >> 32)) &* 0xD6E8_FEB8_6659_FD93
        return Int(truncatingIfNeeded: h ^ (h >> 32))
    }

    private static let hashKey = UInt64.random(in: .min ... .max)

    /// The 32 digest bytes, in SHA-256 output order.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 32 else { return nil }
        let a = Array(bytes)
        func word(_ o: Int) -> UInt64 {
            var v: UInt64 = 0
            for k in 0..<8 { v |= UInt64(a[o + k]) << (8 * UInt64(k)) }
            return v
        }
        self.init(w0: word(0), w1: word(8), w2: word(16), w3: word(24))
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32)
        for w in [w0, w1, w2, w3] {
            for k in 0..<8 { out.append(UInt8(truncatingIfNeeded: w >> (8 * UInt64(k)))) }
        }
        return out
    }

    /// Hex of the first 8 bytes: enough to tell records apart in `log dump`, useless to an attacker.
    public var description: String { "sha256:" + Hex.lowercase(bytes.prefix(8)) + "…" }
}

public enum TokenGenerator {
    /// 32 random bytes from the system CSPRNG, base64url without padding (43 characters).
    public static func make() -> String {
        var rng = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: 32)
        for k in bytes.indices { bytes[k] = UInt8.random(in: .min ... .max, using: &rng) }
        return base64URL(bytes)
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var out: [UInt8] = []
        var i = 0
        while i + 3 <= bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            for shift in [18, 12, 6, 0] { out.append(alphabet[Int((n >> UInt32(shift)) & 63)]) }
            i += 3
        }
        let rest = bytes.count - i
        if rest > 0 {
            var n = UInt32(bytes[i]) << 16
            if rest == 2 { n |= UInt32(bytes[i + 1]) << 8 }
            out.append(alphabet[Int((n >> 18) & 63)])
            out.append(alphabet[Int((n >> 12) & 63)])
            if rest == 2 { out.append(alphabet[Int((n >> 6) & 63)]) }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
