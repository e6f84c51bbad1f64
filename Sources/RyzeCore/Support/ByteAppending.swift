extension Array where Element == UInt8 {
    /// Appends a string's UTF-8 bytes with one copy from its contiguous storage; the generic
    /// `append(contentsOf: s.utf8)` goes byte by byte and shows up in every profile.
    @inlinable
    public mutating func appendUTF8(_ s: String) {
        var s = s
        s.withUTF8 { append(contentsOf: $0) }
    }

    /// Appends a non-negative integer in decimal, without making a String first.
    public mutating func appendDecimal(_ value: Int) {
        precondition(value >= 0)
        if value < 10 { append(UInt8(ascii: "0") + UInt8(value)); return }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = value
        var count = 0
        Swift.withUnsafeMutableBytes(of: &digits) { d in
            while n > 0 { d[19 - count] = UInt8(ascii: "0") + UInt8(n % 10); n /= 10; count += 1 }
            append(contentsOf: UnsafeRawBufferPointer(rebasing: d[(20 - count)...]))
        }
    }
}

