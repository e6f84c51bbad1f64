extension Array where Element == UInt8 {
    /// Appends a string's UTF-8 bytes with one copy from its contiguous storage; the generic
    /// `append(contentsOf: s.utf8)` goes byte by byte and shows up in every profile.
    @inlinable
    public mutating func appendUTF8(_ s: String) {
        var s = s
        s.withUTF8 { append(contentsOf: $0) }
    }

    /// Appends a non-negative integer in decimal, zero-padded to `width`, without making a String.
    public mutating func appendDecimal(_ value: Int, width: Int = 1) {
        precondition(value >= 0)
        let start = endIndex
        var n = value
        repeat {
            append(UInt8(ascii: "0") + UInt8(n % 10))
            n /= 10
        } while n > 0
        while endIndex - start < width { append(UInt8(ascii: "0")) }   // leading, once reversed
        self[start...].reverse()
    }
}

