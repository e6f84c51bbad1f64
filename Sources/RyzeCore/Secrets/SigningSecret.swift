import Crypto

/// A webhook label's signing secret (SPEC §4, §6.3): `whsec_` followed by the standard base64,
/// with padding, of the HMAC key, as in Standard Webhooks. Ours are 32 random bytes; any key of
/// 24 to 64 bytes (Standard Webhooks' range) is read, so secrets and test vectors from other
/// implementations work too.
///
/// Invariant: `text` is exactly `whsec_` + `Base64.encode(key)`, and base64 decoding is
/// canonical, so a text has one key and a key one text.
public struct SigningSecret: Equatable, Sendable {
    public static let prefix = "whsec_"
    public static let generatedByteCount = 32
    public static let keyByteRange = 24...64

    public let text: String
    /// The HMAC-SHA256 key: the bytes the base64 after `whsec_` encodes.
    public let key: [UInt8]

    /// A fresh secret: 32 bytes from the system CSPRNG.
    public static func generate() -> SigningSecret {
        let key = SecureRandom.bytes(generatedByteCount)
        return SigningSecret(text: prefix + Base64.encode(key), key: key)
    }

    /// A stored or given secret; nil unless `whsec_` + canonical padded base64 of 24 to 64 bytes.
    public init?(text: String) {
        guard let key = SigningSecret.keyBytes(of: text) else { return nil }
        self.init(text: text, key: key)
    }

    private init(text: String, key: [UInt8]) {
        self.text = text
        self.key = key
    }

    /// The key bytes a `whsec_...` string encodes, or nil if it is not one.
    public static func keyBytes(of text: String) -> [UInt8]? {
        guard text.hasPrefix(prefix), let key = Base64.decode(text.dropFirst(prefix.count)),
              keyByteRange.contains(key.count) else { return nil }
        return key
    }

    /// The `webhook-signature` header of one delivery attempt: `v1,` + the base64 of
    /// HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>"), the Standard Webhooks scheme.
    public func signature(webhookID: String, timestamp: Int64, body: [UInt8]) -> String {
        var message: [UInt8] = []
        message.reserveCapacity(webhookID.utf8.count + 22 + body.count)
        message.appendUTF8(webhookID)
        message.append(UInt8(ascii: "."))
        message.appendUTF8(String(timestamp))
        message.append(UInt8(ascii: "."))
        message.append(contentsOf: body)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key))
        return "v1," + Base64.encode(Array(mac))
    }
}

/// A signing secret is returned to the owner of its webhook and nowhere else: interpolating one
/// into a log line shows only that it is there.
extension SigningSecret: CustomStringConvertible, CustomReflectable {
    public var description: String { "whsec_<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: ["text": description]) }
}
