import CFastCGI
import RyzeCore

extension FastCGIServer {
    /// Straight into libfcgi's output buffer, piece by piece: FCGX_PutStr only copies until the
    /// buffer (8 KiB) is full, and everything goes out in one write at FCGX_Finish_r. Which
    /// headers, in which order: `HTTPResponse.writeHead`, in RyzeCore.
    static func writeResponse(_ response: HTTPResponse, to out: UnsafeMutablePointer<FCGX_Stream>!) {
        var sink = StreamSink(stream: out)
        response.writeHead(to: &sink)
        if !response.body.isEmpty {
            _ = response.body.withUnsafeBytes { FCGX_PutStr($0.baseAddress!.assumingMemoryBound(to: CChar.self), Int32($0.count), out) }
        }
    }

    /// The response head's pieces into a libfcgi output stream, each with one FCGX_PutStr from
    /// where it already lies: a literal's static bytes, a String's storage, digits on the stack.
    struct StreamSink: ResponseHeadSink {
        let stream: UnsafeMutablePointer<FCGX_Stream>!

        func write(_ literal: StaticString) {
            _ = UnsafeRawPointer(literal.utf8Start).withMemoryRebound(to: CChar.self, capacity: literal.utf8CodeUnitCount) {
                FCGX_PutStr($0, Int32(literal.utf8CodeUnitCount), stream)
            }
        }

        func write(_ string: String) {
            var s = string
            s.withUTF8 { bytes in
                guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
                _ = UnsafeRawPointer(base).withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                    FCGX_PutStr($0, Int32(bytes.count), stream)
                }
            }
        }

        func write(decimal value: Int) {
            DecimalDigits.withASCII(value) {
                _ = FCGX_PutStr($0.baseAddress!.assumingMemoryBound(to: CChar.self), Int32($0.count), stream)
            }
        }
    }
}
