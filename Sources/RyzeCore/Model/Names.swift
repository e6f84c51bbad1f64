/// Name and token rules of SPEC §2 and §4.
public enum Names {
    /// `^[A-Za-z0-9_-]{1,100}$`: the SPEC's rule for instance names, applied to account names too.
    public static func isValidName<S: StringProtocol>(_ s: S) -> Bool {
        let u = s.utf8
        guard !u.isEmpty, u.count <= 100 else { return false }
        return u.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
        }
    }

    /// A caller-chosen token: 16 to 256 printable ASCII characters, space excluded (headers trim it).
    public static func isValidChosenToken(_ s: String) -> Bool {
        let u = s.utf8
        guard u.count >= 16, u.count <= 256 else { return false }
        return u.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }
}
