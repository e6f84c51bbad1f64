import Crypto
import RyzeCore

/// The name of a bucket on the Redis server: the same on every host (no per-host salt), and never
/// a token or an address in clear. A token's bucket is named from its digest hashed once more
/// under this prefix, so what Redis holds is not even the digest the state store looks tokens up
/// by; a network's from its masked bits. 128 bits of SHA-256, in hex.
enum RedisKeys {
    static let prefix = "ryze:rl:"

    static func name(_ key: RateKey) -> String {
        var material: [UInt8] = Array("ryze-events rate-limit v1\u{0}".utf8)
        let kind: String
        switch key {
        case .token(let digest, let bucket):
            kind = "t\(bucket)"
            material += [UInt8(truncatingIfNeeded: bucket)] + digest.bytes
        case .network(let network):
            kind = "n"
            switch network {
            case .ipv4(let a, let prefix):
                material += Array("4/\(prefix)/\(a)".utf8)
            case .ipv6(let high, let low, let prefix):
                material += Array("6/\(prefix)/\(high)/\(low)".utf8)
            case .unparsed(let text):
                material += Array("u/".utf8) + Array(text.utf8)
            }
        }
        return prefix + kind + ":" + Hex.lowercase(SHA256.hash(data: material).prefix(16))
    }
}
