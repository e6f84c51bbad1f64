#if canImport(Glibc)
import Glibc
#endif

/// Why the deployment key could not be had, or a sealed secret could not be opened. Every
/// description names the file (where there is one) and says what to do; none ever holds key
/// material or a secret, so they can go to logs and to the operator's terminal as they are.
public enum SecretError: Error, Equatable, CustomStringConvertible {
    /// `create: false` and there is no key file: encrypted records exist, so making a new key
    /// would make them unreadable.
    case keyFileMissing(path: String)
    /// The key file is not exactly `DeploymentKey.byteCount` bytes.
    case keyFileWrongSize(path: String, size: Int)
    /// The key file can be read or written by its group or by others (mode shown in octal).
    case keyFileLooseMode(path: String, mode: UInt32)
    /// The key path names a directory, a device, a FIFO...
    case keyFileNotRegular(path: String)
    /// A system call on the key file failed; the message names the call and the errno text.
    case io(path: String, message: String)
    /// The key does not have the ID stored beside the encrypted records: it is not the key
    /// they were sealed with. Found before any decryption is tried.
    case keyMismatch(path: String, expected: DeploymentKey.ID, found: DeploymentKey.ID)
    /// A sealed box did not authenticate: sealed under another key, or damaged.
    case cannotOpen
    /// A sealed box too short to hold a nonce and a tag, or of a format version this build
    /// does not know.
    case malformedBox(reason: String)

    public var description: String {
        switch self {
        case .keyFileMissing(let path):
            return "\(path): the deployment's secret key is missing while encrypted webhook secrets exist; "
                + "restore this file from a backup (or point --secret-key-file at it): a new key could not decrypt them"
        case let .keyFileWrongSize(path, size):
            return "\(path): a secret key file must hold exactly \(DeploymentKey.byteCount) raw bytes, this one has \(size)"
        case let .keyFileLooseMode(path, mode):
            return "\(path): mode \(octal(mode)) lets other users at the deployment's secret key; run `chmod 600 \(path)`"
        case .keyFileNotRegular(let path):
            return "\(path): the secret key must be a regular file"
        case let .io(path, message):
            return "\(path): \(message)"
        case let .keyMismatch(path, expected, found):
            return "\(path): this is not the key the encrypted webhook secrets were sealed with "
                + "(key id \(found), expected \(expected)); restore the right key file"
        case .cannotOpen:
            return "a sealed secret did not authenticate: wrong deployment key, or damaged data"
        case .malformedBox(let reason):
            return "a sealed secret is malformed: \(reason)"
        }
    }

    static func errno(_ path: String, _ call: String) -> SecretError {
        .io(path: path, message: "\(call): \(String(cString: strerror(Glibc.errno)))")
    }

    private func octal(_ mode: UInt32) -> String {
        let digits = String(mode & 0o7777, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
