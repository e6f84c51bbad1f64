import Atomics

/// SPEC §2's per-process memo: a bounded map from a keyed 128-bit hash of a token to its SHA-256
/// digest, so that a token this process has already seen costs a SipHash (a few hundred
/// instructions) instead of a SHA-256 (about 3,700).
///
/// - No raw token is kept: an entry holds the token's SipHash-2-4-128 under a random key made at
///   start and never written anywhere, and the digest the store already knows.
/// - Revocation stays immediate: the memo only yields a digest, which is then looked up in the
///   current state like any other.
/// - A false hit would authenticate one token as another: it needs a 128-bit collision of a
///   keyed PRF under a key the attacker never sees.
/// - Bounded: a fixed, direct-mapped table; a new entry overwrites the slot's old one. Only
///   tokens that authenticated are remembered, so a flood of made-up tokens evicts nothing.
///
/// Lock-free and shared by the process's request threads: each slot is a seqlock (`seq` odd
/// while a writer fills it); a reader that sees the sequence change under it treats the slot as
/// a miss. A writer that finds the slot being written skips it: remembering is optional.
public final class TokenMemo: @unchecked Sendable {
    /// seq, hash (2 words), digest (4 words), padding: one 64-byte line per slot.
    private static let wordsPerSlot = 8
    private let mask: Int
    private let words: UnsafeMutablePointer<UnsafeAtomic<UInt64>.Storage>
    private let hasher: SipHash128

    /// `slots` is rounded up to a power of two.
    public init(slots: Int = 4096) {
        var n = 1
        while n < max(1, slots) { n <<= 1 }
        mask = n - 1
        words = .allocate(capacity: n * TokenMemo.wordsPerSlot)
        words.initialize(repeating: UnsafeAtomic<UInt64>.Storage(0), count: n * TokenMemo.wordsPerSlot)
        var rng = SystemRandomNumberGenerator()
        hasher = SipHash128(k0: rng.next(), k1: rng.next())
    }

    deinit {
        words.deinitialize(count: (mask + 1) * TokenMemo.wordsPerSlot)
        words.deallocate()
    }

    /// The token's digest, from the memo or computed. `isKnown` decides, for a computed digest,
    /// whether it is worth remembering (the caller looks it up in the state anyway).
    public func digest(of token: String, rememberIf isKnown: (TokenDigest) -> Bool) -> (TokenDigest, hit: Bool) {
        var token = token
        let (h0, h1) = token.withUTF8 { hasher.hash(UnsafeRawBufferPointer($0)) }
        let slot = words + (Int(truncatingIfNeeded: h0) & mask) * TokenMemo.wordsPerSlot
        if let d = lookup(slot, h0, h1) { return (d, true) }
        let digest = TokenDigest(of: token)
        if isKnown(digest) { remember(slot, h0, h1, digest) }
        return (digest, false)
    }

    @inline(__always) private func word(_ slot: UnsafeMutablePointer<UnsafeAtomic<UInt64>.Storage>, _ k: Int) -> UnsafeAtomic<UInt64> {
        UnsafeAtomic(at: slot + k)
    }

    private func lookup(_ slot: UnsafeMutablePointer<UnsafeAtomic<UInt64>.Storage>, _ h0: UInt64, _ h1: UInt64) -> TokenDigest? {
        let seq = word(slot, 0).load(ordering: .acquiring)
        guard seq & 1 == 0, seq != 0 else { return nil }
        let s0 = word(slot, 1).load(ordering: .relaxed), s1 = word(slot, 2).load(ordering: .relaxed)
        let d = TokenDigest(w0: word(slot, 3).load(ordering: .relaxed), w1: word(slot, 4).load(ordering: .relaxed),
                            w2: word(slot, 5).load(ordering: .relaxed), w3: word(slot, 6).load(ordering: .relaxed))
        atomicMemoryFence(ordering: .acquiring)
        guard word(slot, 0).load(ordering: .relaxed) == seq, s0 == h0, s1 == h1 else { return nil }
        return d
    }

    private func remember(_ slot: UnsafeMutablePointer<UnsafeAtomic<UInt64>.Storage>, _ h0: UInt64, _ h1: UInt64, _ d: TokenDigest) {
        let seq = word(slot, 0).load(ordering: .relaxed)
        guard seq & 1 == 0, word(slot, 0).compareExchange(expected: seq, desired: seq &+ 1, ordering: .acquiring).exchanged else { return }
        // The odd sequence must be visible before any of the new words.
        atomicMemoryFence(ordering: .releasing)
        word(slot, 1).store(h0, ordering: .relaxed)
        word(slot, 2).store(h1, ordering: .relaxed)
        word(slot, 3).store(d.w0, ordering: .relaxed)
        word(slot, 4).store(d.w1, ordering: .relaxed)
        word(slot, 5).store(d.w2, ordering: .relaxed)
        word(slot, 6).store(d.w3, ordering: .relaxed)
        word(slot, 0).store(seq &+ 2, ordering: .releasing)
    }
}
