import Crypto

/// Seals a secret (a webhook's `authorization` or `signingSecret`) under the deployment key, so
/// that it is never written to disk in clear (SPEC §4).
///
/// A box is `version (1 byte) | nonce (12) | ciphertext (the secret's UTF-8 length) | tag (16)`,
/// AES-256-GCM. The version byte and the caller's `context` are authenticated with it, so a box
/// cannot be read as another format, nor, when callers pass where it belongs (say instance, label
/// and field), be moved under another webhook without `open` failing.
///
/// Nonces are 12 random bytes per seal: safe for far more than 2^32 seals under one key, and
/// secrets are sealed only when a webhook is saved.
public struct SecretBox: Sendable {
    public static let version: UInt8 = 1
    public static let nonceByteCount = 12
    public static let tagByteCount = 16
    /// Bytes a box adds to its secret.
    public static let overhead = 1 + nonceByteCount + tagByteCount

    public let key: DeploymentKey

    public init(key: DeploymentKey) { self.key = key }

    public func seal(_ secret: String, context: String = "") -> [UInt8] {
        let sealed: AES.GCM.SealedBox
        do {
            sealed = try AES.GCM.seal(Array(secret.utf8), using: key.key, authenticating: SecretBox.associatedData(context))
        } catch {
            // Only a key or nonce of the wrong size makes it throw; both are fixed here.
            preconditionFailure("AES-256-GCM seal failed with a 32-byte key and a 12-byte nonce: \(error)")
        }
        guard let combined = sealed.combined else {
            preconditionFailure("a 12-byte nonce always has a combined representation")
        }
        var out: [UInt8] = [SecretBox.version]
        out.reserveCapacity(SecretBox.overhead + secret.utf8.count)
        out.append(contentsOf: combined)
        return out
    }

    /// The secret, or `cannotOpen` when the box does not authenticate under this key with this
    /// context (wrong key, damaged bytes, wrong context), or `malformedBox`.
    public func open(_ box: [UInt8], context: String = "") throws(SecretError) -> String {
        guard box.count >= SecretBox.overhead else {
            throw .malformedBox(reason: "\(box.count) bytes, fewer than the \(SecretBox.overhead) of an empty secret")
        }
        guard box[0] == SecretBox.version else {
            throw .malformedBox(reason: "format version \(box[0]) is unknown to this build")
        }
        let plain: [UInt8]
        do {
            let sealed = try AES.GCM.SealedBox(combined: box[1...])
            plain = Array(try AES.GCM.open(sealed, using: key.key, authenticating: SecretBox.associatedData(context)))
        } catch {
            throw .cannotOpen
        }
        // Authenticated bytes came from `seal`, which took a String: invalid UTF-8 means a box
        // sealed by something else under this key.
        guard let secret = plain.withUnsafeBufferPointer({ String.fromUTF8($0) }) else {
            throw .malformedBox(reason: "the secret is not UTF-8")
        }
        return secret
    }

    private static func associatedData(_ context: String) -> [UInt8] {
        [version] + Array(context.utf8)
    }
}
