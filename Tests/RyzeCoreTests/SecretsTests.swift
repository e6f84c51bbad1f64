import Foundation
import Testing
@testable import RyzeCore

@Suite struct Base64Tests {
    // RFC 4648 §10.
    static let vectors: [(String, String)] = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="),
                                              ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")]

    @Test func rfc4648Vectors() {
        for (plain, encoded) in Base64Tests.vectors {
            #expect(Base64.encode(Array(plain.utf8)) == encoded)
            #expect(Base64.decode(encoded) == Array(plain.utf8))
        }
        let all = (0...255).map(UInt8.init)
        #expect(Base64.decode(Base64.encode(all)) == all)
        #expect(Base64.encode([0xFB, 0xFF, 0xBF]) == "+/+/")
    }

    @Test(arguments: ["Zg", "Zg=", "Zh==", "Zm9=", "Z===", "====", "Zg==Zg==", " Zg==", "Zm9v\n", "-_8=", "Zg=a", "Zm9v=",
                      "é===", "Zm 9v"])
    func refusesNonCanonical(_ text: String) {
        #expect(Base64.decode(text) == nil)
    }
}

@Suite struct SigningSecretTests {
    @Test func generatedFormat() throws {
        let s = SigningSecret.generate()
        #expect(s.text.hasPrefix("whsec_"))
        #expect(s.text.utf8.count == 6 + 44)
        #expect(s.text.hasSuffix("="))
        #expect(s.key.count == 32)
        #expect(SigningSecret.keyBytes(of: s.text) == s.key)
        #expect(SigningSecret(text: s.text) == s)
        #expect(SigningSecret.generate() != s)
    }

    @Test func keyBytes() {
        #expect(SigningSecret.keyBytes(of: "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=") == Array(0..<32))
        // Standard Webhooks' own example secret is 24 bytes.
        #expect(SigningSecret.keyBytes(of: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?.count == 24)
        for bad in ["", "whsec_", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "WHSEC_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                    "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=",
                    "whsec_AAECAwQFBgcICQoLDA0ODw==", "whsec_" + Base64.encode([UInt8](repeating: 1, count: 65)),
                    " whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"] {
            #expect(SigningSecret.keyBytes(of: bad) == nil, "\(bad)")
            #expect(SigningSecret(text: bad) == nil)
        }
    }

    /// The reference vector of the Standard Webhooks libraries.
    @Test func standardWebhooksVector() throws {
        let s = try #require(SigningSecret(text: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        #expect(s.signature(webhookID: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1614265330, body: Array(#"{"test": 2432232314}"#.utf8))
            == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    /// Computed with Python: base64.b64encode(hmac.new(bytes(range(32)), b"<id>.<ts>." + body, sha256).digest()).
    @Test func envelopeVector() throws {
        let s = try #require(SigningSecret(text: "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="))
        let body = Array(#"{"event":"message.exchange","data":{"text":"hé"},"instanceData":{"baseUrl":"https://api.example","instance":"i1"}}"#.utf8)
        #expect(s.signature(webhookID: "evt_01HZX3K7Q9ABCDEFGHJKMNPQRS", timestamp: 1_800_000_000, body: body)
            == "v1,iIkQ4G1mcsdCHdFxdneuSDxyzHRBOuegnyuNv1fvOd0=")
    }

    @Test func printingNeverShowsTheSecret() {
        let s = SigningSecret.generate()
        let tail = String(s.text.dropFirst(6))
        #expect(!"\(s)".contains(tail))
        #expect(!String(reflecting: s).contains(tail))
        var dumped = ""
        dump(s, to: &dumped)
        #expect(!dumped.contains(tail))
    }
}

@Suite struct DeploymentKeyTests {
    /// A fresh directory that exists (TempDirectory only names one).
    func directory() throws -> TempDirectory {
        let dir = TempDirectory()
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        return dir
    }

    func write(_ bytes: [UInt8], to path: String, mode: Int) throws {
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }

    func mode(_ path: String) throws -> Int {
        try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
    }

    @Test func createdOnFirstUseWith0600And32Bytes() throws {
        let dir = try directory()
        let path = DeploymentKey.defaultPath(dataDirectory: dir.path)
        #expect(path == dir.path + "/secret.key")
        let key = try DeploymentKey.loadOrCreate(path: path, create: true)
        #expect(try mode(path) == 0o600)
        let bytes = try #require(FileManager.default.contents(atPath: path))
        #expect(bytes.count == 32)
        #expect(key.path == path)
        #expect(DeploymentKey(bytes: Array(bytes), path: "x")?.id == key.id)
        // Later uses read the same key, whether or not they may create.
        #expect(try DeploymentKey.loadOrCreate(path: path, create: true).id == key.id)
        #expect(try DeploymentKey.loadOrCreate(path: path, create: false).id == key.id)
        // No temporary file is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["secret.key"])
    }

    @Test func missingWithoutCreateThrowsNamingTheFile() throws {
        let dir = try directory()
        let path = dir.path + "/secret.key"
        #expect(throws: SecretError.keyFileMissing(path: path)) { try DeploymentKey.loadOrCreate(path: path, create: false) }
        do {
            _ = try DeploymentKey.loadOrCreate(path: path, create: false)
        } catch {
            #expect(error.description.hasPrefix(path + ": "))
        }
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test(arguments: [0, 1, 31, 33, 64, 65])
    func wrongSizeRefused(_ size: Int) throws {
        let dir = try directory()
        let path = dir.path + "/secret.key"
        try write([UInt8](repeating: 0x41, count: size), to: path, mode: 0o600)
        #expect(throws: SecretError.keyFileWrongSize(path: path, size: size)) { try DeploymentKey.loadOrCreate(path: path, create: true) }
        // Never "repaired" by making a new key over it.
        #expect(FileManager.default.contents(atPath: path)?.count == size)
    }

    @Test func hexTextIsNotAKeyFile() throws {
        let dir = try directory()
        let path = dir.path + "/secret.key"
        try write(Array(String(repeating: "ab", count: 32).utf8) + [0x0A], to: path, mode: 0o600)
        #expect(throws: SecretError.keyFileWrongSize(path: path, size: 65)) { try DeploymentKey.loadOrCreate(path: path, create: true) }
    }

    @Test(arguments: [0o644, 0o640, 0o604, 0o620, 0o602, 0o610, 0o601, 0o666, 0o777])
    func looseModeRefused(_ m: Int) throws {
        let dir = try directory()
        let path = dir.path + "/secret.key"
        try write([UInt8](repeating: 7, count: 32), to: path, mode: m)
        #expect(throws: SecretError.keyFileLooseMode(path: path, mode: UInt32(0o100000 | m))) {
            try DeploymentKey.loadOrCreate(path: path, create: true)
        }
        let message = SecretError.keyFileLooseMode(path: path, mode: UInt32(0o100000 | m)).description
        #expect(message.contains(String(m, radix: 8)))
        #expect(message.contains("chmod 600 \(path)"))
    }

    @Test(arguments: [0o600, 0o400])
    func ownerOnlyModesAccepted(_ m: Int) throws {
        let dir = try directory()
        let path = dir.path + "/secret.key"
        let bytes = Array(UInt8(0)..<32)
        try write(bytes, to: path, mode: m)
        #expect(try DeploymentKey.loadOrCreate(path: path, create: false).id == DeploymentKey(bytes: bytes, path: path)?.id)
    }

    @Test func directoryRefused() throws {
        let dir = try directory()
        #expect(throws: SecretError.keyFileNotRegular(path: dir.path)) { try DeploymentKey.loadOrCreate(path: dir.path, create: true) }
    }

    @Test func missingDirectoryIsAnError() throws {
        let dir = TempDirectory()   // never created
        let path = dir.path + "/secret.key"
        #expect(throws: SecretError.self) { try DeploymentKey.loadOrCreate(path: path, create: true) }
    }

    @Test func racingCreatorsAgree() async throws {
        let dir = try directory()
        let path = dir.path + "/secret.key"
        let ids = try await withThrowingTaskGroup(of: DeploymentKey.ID.self) { group in
            for _ in 0..<16 {
                group.addTask { try DeploymentKey.loadOrCreate(path: path, create: true).id }
            }
            var ids: [DeploymentKey.ID] = []
            for try await id in group { ids.append(id) }
            return ids
        }
        #expect(ids.count == 16)
        #expect(Set(ids).count == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["secret.key"])
    }

    @Test func keyIDVectorAndCheck() throws {
        // Python: hmac.new(bytes(range(32)), b"ryze-events key id", sha256).hexdigest()[:16]
        let key = try #require(DeploymentKey(bytes: Array(0..<32), path: "k"))
        #expect(key.id.description == "0c51e5885f6b9cd8")
        #expect(DeploymentKey(bytes: Array(0..<31), path: "k") == nil)
        #expect(DeploymentKey.ID(bytes: [1, 2, 3]) == nil)
        #expect(throws: Never.self) { try key.verify(expected: key.id) }
        let other = try #require(DeploymentKey(bytes: Array(1...32), path: "other.key"))
        #expect(throws: SecretError.keyMismatch(path: "other.key", expected: key.id, found: other.id)) {
            try other.verify(expected: key.id)
        }
        let message = SecretError.keyMismatch(path: "other.key", expected: key.id, found: other.id).description
        #expect(message.hasPrefix("other.key: "))
        #expect(message.contains("0c51e5885f6b9cd8"))
    }

    @Test func printingNeverShowsTheKey() throws {
        let bytes: [UInt8] = Array("0123456789ABCDEFGHIJKLMNOPQRSTUV".utf8)
        let key = try #require(DeploymentKey(bytes: bytes, path: "k"))
        var dumped = ""
        dump(key, to: &dumped)
        for text in ["\(key)", String(reflecting: key), dumped] {
            #expect(!text.contains("0123456789"))
            #expect(!text.contains("48, 49, 50"))
        }
    }
}

@Suite struct SecretBoxTests {
    let box = SecretBox(key: DeploymentKey(bytes: Array(0..<32), path: "a")!)
    let otherBox = SecretBox(key: DeploymentKey(bytes: Array(repeating: 9, count: 32), path: "b")!)

    @Test(arguments: ["", "Bearer abc", "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "é😀", String(repeating: "x", count: 1024)])
    func roundTrip(_ secret: String) throws {
        let sealed = box.seal(secret)
        #expect(sealed.count == SecretBox.overhead + secret.utf8.count)
        #expect(sealed.first == 1)
        #expect(try box.open(sealed) == secret)
        if !secret.isEmpty {
            #expect(!String(decoding: sealed, as: UTF8.self).contains(secret))
        }
        let withContext = box.seal(secret, context: "acme/i1/crm/authorization")
        #expect(try box.open(withContext, context: "acme/i1/crm/authorization") == secret)
    }

    @Test func freshNonceEachTime() {
        #expect(box.seal("same") != box.seal("same"))
    }

    @Test func wrongKeyFails() {
        let sealed = box.seal("Bearer abc")
        #expect(throws: SecretError.cannotOpen) { try otherBox.open(sealed) }
    }

    @Test func wrongContextFails() {
        let sealed = box.seal("Bearer abc", context: "acme/i1/a/authorization")
        #expect(throws: SecretError.cannotOpen) { try box.open(sealed, context: "acme/i1/b/authorization") }
        #expect(throws: SecretError.cannotOpen) { try box.open(sealed) }
    }

    @Test func everyTamperedByteFails() {
        let sealed = box.seal("Bearer abc")
        for k in sealed.indices {
            var damaged = sealed
            damaged[k] ^= 0x01
            #expect(throws: SecretError.self) { try box.open(damaged) }
        }
        var versioned = sealed
        versioned[0] = 2
        #expect(throws: SecretError.malformedBox(reason: "format version 2 is unknown to this build")) { try box.open(versioned) }
    }

    @Test func truncatedOrExtendedFails() {
        let sealed = box.seal("Bearer abc")
        for n in [0, 1, SecretBox.overhead - 1] {
            #expect(throws: SecretError.self) { try box.open(Array(sealed.prefix(n))) }
        }
        #expect(throws: SecretError.cannotOpen) { try box.open(Array(sealed.dropLast())) }
        #expect(throws: SecretError.cannotOpen) { try box.open(sealed + [0]) }
    }

    @Test func errorDescriptionsCarryNoKeyMaterial() {
        let key = DeploymentKey(bytes: Array(0..<32), path: "/data/secret.key")!
        let errors: [SecretError] = [
            .keyFileMissing(path: "/data/secret.key"), .keyFileWrongSize(path: "/data/secret.key", size: 3),
            .keyFileLooseMode(path: "/data/secret.key", mode: 0o100644), .keyFileNotRegular(path: "/data/secret.key"),
            .io(path: "/data/secret.key", message: "cannot open: Permission denied"),
            .keyMismatch(path: "/data/secret.key", expected: key.id, found: key.id), .cannotOpen, .malformedBox(reason: "x"),
        ]
        for e in errors {
            #expect(!e.description.isEmpty)
            #expect(!e.description.contains("000102030405"))
        }
        #expect(SecretError.keyFileLooseMode(path: "p", mode: 0o100644).description.contains("mode 0644"))
    }
}
