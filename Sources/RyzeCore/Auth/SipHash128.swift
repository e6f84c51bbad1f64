/// SipHash-2-4 with its 128-bit output (the reference implementation's `siphash` with
/// `outlen == 16`): a keyed pseudo-random function, so without the key nobody can make two
/// inputs collide on purpose. `TokenMemo` relies on exactly that.
struct SipHash128 {
    let k0: UInt64
    let k1: UInt64

    func hash(_ bytes: UnsafeRawBufferPointer) -> (UInt64, UInt64) {
        var v0: UInt64 = 0x736F_6D65_7073_6575 ^ k0
        var v1: UInt64 = 0x646F_7261_6E64_6F6D ^ k1 ^ 0xEE
        var v2: UInt64 = 0x6C79_6765_6E65_7261 ^ k0
        var v3: UInt64 = 0x7465_6462_7974_6573 ^ k1

        @inline(__always) func round() {
            v0 &+= v1; v1 = v1.rotatedLeft(13); v1 ^= v0; v0 = v0.rotatedLeft(32)
            v2 &+= v3; v3 = v3.rotatedLeft(16); v3 ^= v2
            v0 &+= v3; v3 = v3.rotatedLeft(21); v3 ^= v0
            v2 &+= v1; v1 = v1.rotatedLeft(17); v1 ^= v2; v2 = v2.rotatedLeft(32)
        }

        let count = bytes.count
        let whole = count & ~7
        var i = 0
        while i < whole {
            let m = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            v3 ^= m
            round(); round()
            v0 ^= m
            i += 8
        }
        var last = UInt64(truncatingIfNeeded: count) << 56
        var shift: UInt64 = 0
        while i < count {
            last |= UInt64(bytes[i]) << shift
            shift += 8
            i += 1
        }
        v3 ^= last
        round(); round()
        v0 ^= last

        v2 ^= 0xEE
        round(); round(); round(); round()
        let h0 = v0 ^ v1 ^ v2 ^ v3
        v1 ^= 0xDD
        round(); round(); round(); round()
        let h1 = v0 ^ v1 ^ v2 ^ v3
        return (h0, h1)
    }
}

extension UInt64 {
    @inline(__always) fileprivate func rotatedLeft(_ n: UInt64) -> UInt64 { (self << n) | (self >> (64 - n)) }
}
