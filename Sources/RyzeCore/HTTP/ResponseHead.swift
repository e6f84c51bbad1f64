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
        sink.write("Status: ")
        sink.write(decimal: status.code)
        sink.write(" ")
        sink.write(status.reason)
        if let contentType {
            sink.write("\r\nContent-Type: ")
            sink.write(contentType)
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
    /// Calls `body` with the decimal digits of `value` (a `-` first when negative) in a buffer on
    /// the stack: no String, no allocation.
    @inlinable
    public static func withASCII<R>(_ value: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)   // 24 bytes: room for any Int
        return try withUnsafeMutableBytes(of: &digits) { buffer in
            var n = value.magnitude
            var at = buffer.count
            repeat {
                at -= 1
                buffer[at] = UInt8(ascii: "0") + UInt8(n % 10)
                n /= 10
            } while n > 0
            if value < 0 {
                at -= 1
                buffer[at] = UInt8(ascii: "-")
            }
            return try body(UnsafeRawBufferPointer(rebasing: buffer[at...]))
        }
    }
}
