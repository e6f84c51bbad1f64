import Testing
@testable import RyzeCore

@Suite struct TokenMemoTests {
    /// The reference implementation's 128-bit test vectors (vectors_sip128): key 00 01 .. 0f,
    /// messages 00 01 .. (n-1).
    @Test func sipHash128MatchesTheReferenceVectors() {
        let key = (0..<16).map { UInt8($0) }
        func word(_ b: [UInt8], _ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) } }
        let sip = SipHash128(k0: word(key, 0), k1: word(key, 8))
        func bytes(_ n: Int) -> [UInt8] {
            let message = (0..<n).map { UInt8($0) }
            let (h0, h1) = message.withUnsafeBytes { sip.hash($0) }
            return (0..<8).map { UInt8(truncatingIfNeeded: h0 >> (8 * UInt64($0))) } + (0..<8).map { UInt8(truncatingIfNeeded: h1 >> (8 * UInt64($0))) }
        }
        #expect(bytes(0) == [0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02, 0x93])
        #expect(bytes(1) == [0xda, 0x87, 0xc1, 0xd8, 0x6b, 0x99, 0xaf, 0x44, 0x34, 0x76, 0x59, 0x11, 0x9b, 0x22, 0xfc, 0x45])
    }

    @Test func remembersOnlyKnownTokensAndYieldsTheirDigest() {
        let memo = TokenMemo(slots: 64)
        let token = "a-token-of-forty-three-characters-abcdefghij"
        var (d, hit) = memo.digest(of: token) { _ in false }
        #expect(d == TokenDigest(of: token) && !hit)
        (d, hit) = memo.digest(of: token) { _ in true }
        #expect(d == TokenDigest(of: token) && !hit)
        (d, hit) = memo.digest(of: token) { _ in Issue.record("computed again"); return true }
        #expect(d == TokenDigest(of: token) && hit)
        // Another token never gets the first one's digest, whatever slot it lands in.
        for k in 0..<500 {
            let other = "other-token-\(k)"
            let (od, _) = memo.digest(of: other) { _ in true }
            #expect(od == TokenDigest(of: other))
        }
    }

    /// Each process has its own key: the same token lands on unrelated hashes.
    @Test func keysDifferPerMemo() {
        let a = TokenMemo(), b = TokenMemo()
        #expect(Mirror(reflecting: a).children.count == Mirror(reflecting: b).children.count)
        var collisions = 0
        for k in 0..<64 {
            let t = "t\(k)"
            _ = a.digest(of: t) { _ in true }
            if b.digest(of: t, rememberIf: { _ in false }).hit { collisions += 1 }
        }
        #expect(collisions == 0)
    }

    @Test func concurrentReadersAndWritersNeverSeeATornEntry() async {
        let memo = TokenMemo(slots: 8)   // tiny: threads overwrite each other's slots constantly
        let tokens = (0..<64).map { "concurrent-token-\($0)" }
        let bad = await withTaskGroup(of: Int.self) { group in
            for t in 0..<4 {
                group.addTask {
                    var wrong = 0
                    for k in 0..<5_000 {
                        let token = tokens[(k * 7 + t) % tokens.count]
                        if memo.digest(of: token, rememberIf: { _ in true }).0 != TokenDigest(of: token) { wrong += 1 }
                    }
                    return wrong
                }
            }
            return await group.reduce(0, +)
        }
        #expect(bad == 0)
    }
}

@Suite struct TokenMemoRevocationTests {
    /// A token the memo knows is looked up in the current state on every request.
    @Test func revocationTakesEffectAtOnceAfterAMemoHit() throws {
        let t = try TestApp()
        let inst = try t.createInstance("a")
        for _ in 0..<3 {
            #expect(t.call("GET", "/api/instance/list", token: t.accountToken).status == .ok)
            #expect(t.call("GET", "/api/instance/list", token: inst).status == .ok)
        }
        #expect(t.call("DELETE", "/api/instance/delete/a", token: t.accountToken).status == .ok)
        #expect(t.call("GET", "/api/instance/list", token: inst).message == "Invalid token")
        try Accounts.disable(in: t.store, name: "acme")
        #expect(t.call("GET", "/api/instance/list", token: t.accountToken).message == "Invalid token")
    }
}
