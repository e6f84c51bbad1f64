import CFastCGI
import RyzeCore
#if canImport(Glibc)
import Glibc
#endif

extension FastCGIServer {
    /// The whole response gathered on the stack and handed to libfcgi with one FCGX_PutStr, as
    /// the C floor (bench/fcgi-hello.c) does with its fixed answer: a call per header piece cost
    /// a PLT jump and libfcgi's own checks each time (about 15 pieces per answer). A head or body
    /// larger than the buffer goes out in several calls, the same bytes. Which headers, in which
    /// order: `HTTPResponse.writeHead`, in RyzeCore. libfcgi copies into its 8 KiB output buffer
    /// and everything goes out in one write at FCGX_Finish_r.
    static func writeResponse(_ response: HTTPResponse, to out: UnsafeMutablePointer<FCGX_Stream>!) {
        withUnsafeTemporaryAllocation(byteCount: StreamSink.capacity, alignment: 1) { buffer in
            var sink = StreamSink(stream: out, buffer: buffer.baseAddress!)
            response.writeHead(to: &sink)
            response.body.withUnsafeBytes { sink.write(bytes: $0) }
            sink.flush()
        }
    }

    /// The response's pieces, copied into a buffer of `capacity` bytes on the caller's stack:
    /// literals from their static bytes, Strings from their storage, digits from the stack.
    /// `flush` hands what it holds to libfcgi; it runs whenever a piece would not fit, and once
    /// at the end (the caller's job).
    struct StreamSink: ResponseHeadSink {
        /// Room for the head of any API answer and a typical body; a larger response costs one
        /// more FCGX_PutStr per buffer's worth, nothing else. At most 1,024 bytes: above that
        /// `withUnsafeTemporaryAllocation` asks the runtime whether the stack has room, and on a
        /// request thread it answered no, so that the buffer was a malloc and a free per request.
        static let capacity = 1024
        let stream: UnsafeMutablePointer<FCGX_Stream>!
        let buffer: UnsafeMutableRawPointer
        var count = 0

        init(stream: UnsafeMutablePointer<FCGX_Stream>!, buffer: UnsafeMutableRawPointer) {
            self.stream = stream
            self.buffer = buffer
        }

        mutating func flush() {
            guard count > 0 else { return }
            _ = FCGX_PutStr(buffer.assumingMemoryBound(to: CChar.self), Int32(count), stream)
            count = 0
        }

        /// Inlined into `writeHead`'s specialization: a literal's copy then has a constant length,
        /// which the compiler turns into a few moves instead of a call.
        @inline(__always)
        mutating func write(bytes: UnsafeRawBufferPointer) {
            guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
            if count + bytes.count > StreamSink.capacity {
                overflow(bytes)
                return
            }
            (buffer + count).copyMemory(from: base, byteCount: bytes.count)
            count += bytes.count
        }

        /// The rare way: what does not fit goes after what is held; what is larger than the whole
        /// buffer goes straight to libfcgi, without a copy here.
        @inline(never)
        mutating func overflow(_ bytes: UnsafeRawBufferPointer) {
            flush()
            if bytes.count > StreamSink.capacity {
                _ = FCGX_PutStr(bytes.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(bytes.count), stream)
            } else {
                buffer.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
                count = bytes.count
            }
        }

        @inline(__always)
        mutating func write(_ literal: StaticString) {
            write(bytes: UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
        }

        /// Borrows the string's bytes where it has them contiguous (native and literal strings,
        /// small ones copied to the stack): copying the String to call `withUTF8` cost a retain
        /// and a release per piece.
        @inline(__always)
        mutating func write(_ string: String) {
            if string.utf8.withContiguousStorageIfAvailable({ write(bytes: UnsafeRawBufferPointer($0)) }) != nil { return }
            var s = string
            s.withUTF8 { write(bytes: UnsafeRawBufferPointer($0)) }
        }

        /// The digits go straight into the buffer (see `DecimalDigits.write`), after a flush when
        /// the longest number might not fit.
        @inline(__always)
        mutating func write(decimal value: Int) {
            if count + DecimalDigits.maxCount > StreamSink.capacity { flush() }
            count += DecimalDigits.write(value, to: buffer + count)
        }
    }
}
