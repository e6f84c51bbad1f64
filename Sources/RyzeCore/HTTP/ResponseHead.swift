/// Where a response head goes, piece by piece. The adapter's sink copies each piece straight into
/// libfcgi's output buffer (literals and digits without making a String); `ResponseHeadBytes`
/// collects bytes for `allHeaders` and for tests.
public protocol ResponseHeadSink {
    mutating func write(_ literal: StaticString)
    mutating func write(_ string: String)
    /// The decimal digits of `value` (with a `-` when negative).
    mutating func write(decimal value: Int)
}

extension HTTPResponse {
    /// The response head in CGI form (`Status: 200 OK`, the headers, a blank line): the one place
    /// that says which headers a response carries and in which order. Status, Content-Type,
    /// Retry-After (only when the rate limit set it: a 429, or a 503 from an unreachable rate-limit store), the three X-RateLimit-*, the other
    /// headers in the order they were added, and Content-Length except on a 204.
    ///
    /// Inlinable and generic, not over an existential: the adapter's call specializes for its
    /// sink, so each piece is one direct FCGX_PutStr, as when the adapter spelled it out itself.
    /// The literals carry their line breaks and separators, for the same reason.
    @inlinable
    public func writeHead<Sink: ResponseHeadSink>(to sink: inout Sink) {
        // Nearly every answer is a JSON 200: its first two lines are one literal (the same bytes
        // as the general way below, without formatting the code or copying two strings).
        if status.code == 200, status.reason == "OK", let contentType, contentType == HTTPResponse.jsonType {
            sink.write("Status: 200 OK\r\nContent-Type: application/json")
        } else {
            sink.write("Status: ")
            sink.write(decimal: status.code)
            sink.write(" ")
            sink.write(status.reason)
            if let contentType {
                sink.write("\r\nContent-Type: ")
                sink.write(contentType)
            }
        }
        if let r = rateLimit {
            if let retry = r.retryAfter {
                sink.write("\r\nRetry-After: ")
                sink.write(decimal: retry)
            }
            sink.write("\r\nX-RateLimit-Limit: ")
            sink.write(decimal: r.limit)
            sink.write("\r\nX-RateLimit-Remaining: ")
            sink.write(decimal: r.remaining)
            sink.write("\r\nX-RateLimit-Reset: ")
            sink.write(decimal: r.reset)
        }
        for (name, value) in headers {
            sink.write("\r\n")
            sink.write(name)
            sink.write(": ")
            sink.write(value)
        }
        if status.code != 204 {
            sink.write("\r\nContent-Length: ")
            sink.write(decimal: body.count)
        }
        sink.write("\r\n\r\n")
    }

    /// The head exactly as the adapter writes it.
    public var head: [UInt8] {
        var sink = ResponseHeadBytes()
        writeHead(to: &sink)
        return sink.bytes
    }
}

/// A sink that collects the head's bytes.
public struct ResponseHeadBytes: ResponseHeadSink {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func write(_ literal: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    public mutating func write(_ string: String) { bytes.appendUTF8(string) }

    public mutating func write(decimal value: Int) {
        DecimalDigits.withASCII(value) { bytes.append(contentsOf: $0) }
    }
}

public enum DecimalDigits {
    /// The most bytes `write(_:to:)` writes: `-9223372036854775808`.
    public static let maxCount = 20

    /// "00" to "99" one after the other: two digits per division, as most integer printers do.
    @usableFromInline @inline(__always)
    static var twoDigits: StaticString {
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"
    }

    /// Writes the decimal digits of `value` (a `-` first when negative) at `out`, which has room
    /// for `maxCount` bytes, and returns how many it wrote. No closure and no temporary: the
    /// adapter's sink writes straight into its buffer (five numbers per answer).
    @inlinable
    public static func write(_ value: Int, to out: UnsafeMutableRawPointer) -> Int {
        var n = value.magnitude
        var length = 1
        var power: UInt = 10
        while length < 20 && n >= power {
            length += 1
            power &*= 10
        }
        let sign = value < 0 ? 1 : 0
        if sign == 1 { out.storeBytes(of: UInt8(ascii: "-"), as: UInt8.self) }
        let pairs = UnsafeRawPointer(twoDigits.utf8Start)
        var at = sign + length
        while n >= 100 {
            let pair = Int(n % 100)
            n /= 100
            at -= 2
            (out + at).copyMemory(from: pairs + 2 * pair, byteCount: 2)
        }
        if n >= 10 {
            (out + at - 2).copyMemory(from: pairs + 2 * Int(n), byteCount: 2)
        } else {
            (out + at - 1).storeBytes(of: UInt8(ascii: "0") + UInt8(n), as: UInt8.self)
        }
        return sign + length
    }

    /// Calls `body` with the decimal digits of `value` (a `-` first when negative) in a buffer on
    /// the stack: no String, no allocation.
    @inlinable
    public static func withASCII<R>(_ value: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)   // 24 bytes: room for any Int
        return try withUnsafeMutableBytes(of: &digits) { buffer in
            let count = write(value, to: buffer.baseAddress!)
            return try body(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
        }
    }
}
