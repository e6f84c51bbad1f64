/// Name and token rules of SPEC §2 and §4.
public enum Names {
    /// `^[A-Za-z0-9_-]{1,100}$`: the SPEC's rule for instance names, applied to account names too.
    public static func isValidName<S: StringProtocol>(_ s: S) -> Bool {
        let u = s.utf8
        guard !u.isEmpty, u.count <= 100 else { return false }
        return u.withContiguousStorageIfAvailable { bytes in bytes.allSatisfy(isNameByte) } ?? u.allSatisfy(isNameByte)
    }

    /// `[A-Za-z0-9_-]` as two 64-bit masks over ASCII: one test per byte, on every request path
    /// that names an instance.
    @inline(__always)
    private static func isNameByte(_ c: UInt8) -> Bool {
        let low: UInt64 = 0x03FF_2000_0000_0000      // '-' (45), '0'...'9' (48...57)
        let high: UInt64 = 0x07FF_FFFE_87FF_FFFE     // 'A'...'Z' (65...90), '_' (95), 'a'...'z' (97...122)
        return c < 64 ? (low >> UInt64(c)) & 1 == 1 : c < 128 && (high >> UInt64(c - 64)) & 1 == 1
    }

    /// A caller-chosen token: 16 to 256 printable ASCII characters, space excluded (headers trim it).
    public static func isValidChosenToken(_ s: String) -> Bool {
        let u = s.utf8
        guard u.count >= 16, u.count <= 256 else { return false }
        return u.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }
}
