extension String {
    /// Validating UTF-8 decode with an ASCII fast path. `String(validating:as:)` instantiates generic
    /// metadata on every call, which dominated log replay; names and event types are ASCII.
    @inlinable
    public static func fromUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        var ascii = true
        for b in bytes where b >= 0x80 { ascii = false; break }
        if ascii { return String(decoding: bytes, as: UTF8.self) }
        return String(validating: bytes, as: UTF8.self)
    }
}
