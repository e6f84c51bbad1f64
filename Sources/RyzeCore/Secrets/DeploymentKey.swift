import Crypto
#if canImport(Glibc)
import Glibc
#endif

/// The deployment's AES-256 key, which seals webhook secrets at rest (SPEC §4, §5).
///
/// The key file holds exactly 32 raw bytes and nothing else: no text form to mistype, no trailing
/// newline to strip, and a size check catches any other file. It must be a regular file that
/// neither its group nor others may read, write or execute (mode 0600 or 0400): a looser mode is
/// refused rather than warned about, because the key unlocks every webhook's secrets and a
/// warning in a log nobody reads protects nothing. (A Kubernetes secret mounted with its default
/// mode 0644 therefore needs `defaultMode: 0400`.)
///
/// An immutable class so the key bytes live once, in swift-crypto's `SymmetricKey` (which zeroes
/// them when freed), rather than in value copies; `@unchecked Sendable` because nothing in it
/// changes after `init` and `SymmetricKey` is only ever read.
public final class DeploymentKey: @unchecked Sendable {
    public static let byteCount = 32
    public static let fileName = "secret.key"

    /// A check value for the key, stored beside the records it sealed, so that a wrong key is
    /// named before any decryption is tried: the first 8 bytes of HMAC-SHA256(key, "ryze-events
    /// key id"). It reveals nothing usable about the key and can be logged and shown.
    public struct ID: Hashable, Sendable, CustomStringConvertible {
        public static let byteCount = 8
        public let bytes: [UInt8]

        public init?(bytes: [UInt8]) {
            guard bytes.count == ID.byteCount else { return nil }
            self.bytes = bytes
        }

        /// Lower-case hex, 16 characters.
        public var description: String { Hex.lowercase(bytes) }
    }

    let key: SymmetricKey
    /// Where the key came from, for error messages.
    public let path: String
    public let id: ID

    /// A key held elsewhere than in a file (tests, another store); nil unless 32 bytes.
    public init?(bytes: [UInt8], path: String) {
        guard bytes.count == DeploymentKey.byteCount else { return nil }
        key = SymmetricKey(data: bytes)
        self.path = path
        let mac = HMAC<SHA256>.authenticationCode(for: Array("ryze-events key id".utf8), using: key)
        id = ID(bytes: Array(Array(mac).prefix(ID.byteCount)))!
    }

    public static func defaultPath(dataDirectory: String) -> String {
        dataDirectory.hasSuffix("/") ? dataDirectory + fileName : dataDirectory + "/" + fileName
    }

    /// Reads the key file, making it first when it does not exist and `create` is true.
    ///
    /// `create: false` is for callers that must not silently make a new key, because records
    /// sealed with the old one exist: a missing file is then `keyFileMissing`, naming it.
    ///
    /// Creation is safe against other processes doing the same at once: the key is written and
    /// synced under a temporary name made with O_CREAT|O_EXCL, then published with link(2), which
    /// like O_EXCL fails if the name exists. The file at `path` is therefore never seen half
    /// written, exactly one creator wins, and every process (winner included) returns what it
    /// then reads back from `path`, so all agree on one key.
    public static func loadOrCreate(path: String, create: Bool) throws(SecretError) -> DeploymentKey {
        if let key = try readKeyFile(path) { return key }
        guard create else { throw .keyFileMissing(path: path) }
        try createIfAbsent(path)
        guard let key = try readKeyFile(path) else {
            throw .io(path: path, message: "missing right after it was created (a dangling symbolic link?)")
        }
        return key
    }

    /// Throws `keyMismatch` unless this key has the ID stored beside the encrypted records.
    public func verify(expected: ID) throws(SecretError) {
        guard id == expected else { throw .keyMismatch(path: path, expected: expected, found: id) }
    }

    // MARK: - File

    /// nil when there is no file at `path`; every other problem is an error.
    private static func readKeyFile(_ path: String) throws(SecretError) -> DeploymentKey? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw .errno(path, "cannot open")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .errno(path, "cannot stat") }
        guard st.st_mode & S_IFMT == S_IFREG else { throw .keyFileNotRegular(path: path) }
        guard st.st_mode & 0o077 == 0 else { throw .keyFileLooseMode(path: path, mode: UInt32(st.st_mode)) }
        guard st.st_size == byteCount else { throw .keyFileWrongSize(path: path, size: Int(st.st_size)) }

        // One byte more than a key, so a file that grew since fstat is caught too.
        var buffer = [UInt8](repeating: 0, count: byteCount + 1)
        defer { wipe(&buffer) }
        var got = 0
        while got < buffer.count {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, $0.count - got) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .errno(path, "cannot read")
            }
            if n == 0 { break }
            got += n
        }
        guard got == byteCount else { throw .keyFileWrongSize(path: path, size: got) }
        return DeploymentKey(bytes: Array(buffer.prefix(byteCount)), path: path)
    }

    /// Publishes a fresh key at `path` unless a file is already there (then the other creator
    /// won and this does nothing).
    private static func createIfAbsent(_ path: String) throws(SecretError) {
        let suffix = SecureRandom.bytes(8).map { String($0, radix: 16) }.joined()
        let temporary = "\(path).tmp-\(getpid())-\(suffix)"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw .errno(path, "cannot create \(temporary)") }
        // The temporary name goes in every case: after link(2) `path` is the key's one name.
        defer { unlink(temporary) }
        do {
            defer { close(fd) }
            // Exactly 0600 whatever the umask, which could only have removed bits.
            guard fchmod(fd, 0o600) == 0 else { throw SecretError.errno(path, "cannot chmod \(temporary)") }
            var bytes = SecureRandom.bytes(byteCount)
            defer { wipe(&bytes) }
            var written = 0
            while written < bytes.count {
                let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw SecretError.errno(path, "cannot write \(temporary)")
                }
                written += n
            }
            // Durable before it has its name: a crash never leaves a short key at `path`.
            guard fsync(fd) == 0 else { throw SecretError.errno(path, "cannot sync \(temporary)") }
        }
        if link(temporary, path) != 0 {
            if errno == EEXIST { return }   // another process published first: use its key
            throw .errno(path, "cannot link \(temporary) to")
        }
        try syncDirectory(of: path)
    }

    /// Makes the new name durable: records sealed with the key may be acknowledged right after.
    private static func syncDirectory(of path: String) throws(SecretError) {
        let directory: String
        if let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) {
            directory = slash == path.utf8.startIndex ? "/" : String(path[..<slash])
        } else {
            directory = "."
        }
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .errno(path, "cannot open directory \(directory)") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw .errno(path, "cannot sync directory \(directory)") }
    }

    /// Best effort: overwrites a buffer that held key bytes before it is freed.
    private static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { raw in
            if let base = raw.baseAddress { memset(base, 0, raw.count) }
        }
    }
}

/// Printing or dumping a key shows where it came from and its ID, never its bytes.
extension DeploymentKey: CustomStringConvertible, CustomReflectable {
    public var description: String { "DeploymentKey(path: \(path), id: \(id))" }
    public var customMirror: Mirror { Mirror(self, children: ["path": path, "id": id.description]) }
}
