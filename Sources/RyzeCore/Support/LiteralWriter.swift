/// Copies literals into a buffer sized in advance by the caller.
struct LiteralWriter {
    let buffer: UnsafeMutableBufferPointer<UInt8>
    var count = 0

    init(_ buffer: UnsafeMutableBufferPointer<UInt8>) { self.buffer = buffer }

    mutating func write(_ s: StaticString) {
        let n = s.utf8CodeUnitCount
        precondition(count + n <= buffer.count)
        (buffer.baseAddress! + count).initialize(from: s.utf8Start, count: n)
        count += n
    }
}
