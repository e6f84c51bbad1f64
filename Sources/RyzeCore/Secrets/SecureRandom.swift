/// Random bytes for keys and secrets. `SystemRandomNumberGenerator` is the system CSPRNG
/// (`getrandom(2)` on Linux), safe for cryptographic use and shared by every thread.
public enum SecureRandom {
    public static func bytes(_ count: Int) -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        var out: [UInt8] = []
        out.reserveCapacity(count + 7)
        while out.count < count {
            var word = rng.next()
            for _ in 0..<8 {
                out.append(UInt8(truncatingIfNeeded: word))
                word >>= 8
            }
        }
        out.removeLast(out.count - count)
        return out
    }

    /// A random number other than 0 (0 means "none" where it is used: label generations).
    public static func nonZeroWord() -> UInt64 {
        var rng = SystemRandomNumberGenerator()
        while true {
            let word = rng.next()
            if word != 0 { return word }
        }
    }
}
