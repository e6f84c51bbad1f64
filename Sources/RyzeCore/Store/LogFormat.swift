#if canImport(Glibc)
import Glibc
#endif

/// What a log holds: one record per frame, encoded and decoded by the record type itself.
public protocol LogEntry: Sendable {
    func encode() -> [UInt8]
    /// nil when the payload is not a record this version understands: damage.
    static func decode(_ payload: UnsafeRawBufferPointer) -> Self?
}

/// Which log a file is: its magic, version and largest record. Every log of the data directory
/// shares the framing below; log_format.md describes it.
public struct LogKind: Sendable {
    /// The file's base name in the data directory: `<name>.log`, `<name>.lock`, `<name>.seq`.
    public let name: String
    public let magic: [UInt8]
    public let version: UInt32
    /// No real record comes near this; a larger length field is damage, not a record.
    public let maxPayload: Int

    public init(name: String, magic: String, version: UInt32, maxPayload: Int) {
        precondition(magic.utf8.count == 8)
        self.name = name
        self.magic = Array(magic.utf8)
        self.version = version
        self.maxPayload = maxPayload
    }

    /// `events.log`: accounts, instances and configurations.
    public static let events = LogKind(name: "events", magic: "RYZELOG\u{1}", version: 1, maxPayload: 1 << 20)
}

/// The framing of the data directory's logs; log_format.md beside this file is its description.
public enum LogFormat {
    public static let headerSize = 16
    public static let frameHeaderSize = 8
    public static var magic: [UInt8] { LogKind.events.magic }
    public static var maxPayload: Int { LogKind.events.maxPayload }

    public static func header(_ kind: LogKind = .events) -> [UInt8] {
        var w = ByteWriter()
        w.bytes.append(contentsOf: kind.magic)
        w.u32(kind.version)
        w.u32(CRC32C.mask(CRC32C.checksum(w.bytes)))
        return w.bytes
    }

    public static func isValidHeader(_ bytes: ArraySlice<UInt8>, _ kind: LogKind = .events) -> Bool {
        bytes.count == headerSize && Array(bytes) == header(kind)
    }

    /// An `events.log` record (so that `.accountCreated(...)` reads as it is).
    public static func frame(_ record: LogRecord) -> [UInt8] { frame(entry: record) }

    /// `length u32 | masked crc32c(payload) u32 | payload`, little-endian.
    public static func frame(entry record: some LogEntry) -> [UInt8] {
        let payload = record.encode()
        var w = ByteWriter()
        w.bytes.reserveCapacity(frameHeaderSize + payload.count)
        w.u32(UInt32(payload.count))
        w.u32(CRC32C.mask(CRC32C.checksum(payload)))
        w.bytes.append(contentsOf: payload)
        return w.bytes
    }

    public enum Stop: Error, Equatable, Sendable {
        /// Every byte up to the end of the file was a valid record.
        case clean
        /// The bytes at `offset` are the start of a record whose frame runs past the end of the file.
        case incomplete
        /// The record at `offset` fails its checksum, has an impossible length, or does not decode.
        case damaged(reason: String)
    }

    public struct ScanResult: Equatable, Sendable {
        /// The offset just past the last valid record: where the valid prefix ends.
        public var end: Int
        public var stop: Stop
        public var records: Int
    }

    /// `events.log`'s records; see the generic `scan` below.
    public static func scan(fd: Int32, from offset: Int, chunk: Int = 1 << 20,
                            _ body: (LogRecord, _ offset: Int, _ frameSize: Int) -> Void) throws(StoreError) -> ScanResult {
        try scan(fd: fd, from: offset, kind: .events, chunk: chunk, body)
    }

    /// The read buffer for `bytes` still to scan (from an fstat just before): no larger than
    /// those bytes. Catching up after another worker's write scans one record; a 1 MiB buffer,
    /// zeroed, for that cost more than the request it ran in. The file may have grown since the
    /// fstat: `scan` refills and grows its buffer as it needs, so a small chunk is never wrong.
    static func chunk(forBytes bytes: Int) -> Int { max(64, min(1 << 20, bytes)) }

    /// Reads frames from `fd` starting at `offset` until the end of the file or the first bad frame,
    /// handing each valid record to `body`. Reads in chunks so replay memory stays flat.
    public static func scan<E: LogEntry>(fd: Int32, from offset: Int, kind: LogKind, chunk: Int = 1 << 20,
                                         _ body: (E, _ offset: Int, _ frameSize: Int) -> Void) throws(StoreError) -> ScanResult {
        let maxPayload = kind.maxPayload
        var buffer = [UInt8](repeating: 0, count: max(chunk, 64))
        var bufferStart = offset   // file offset of buffer[0]
        var filled = 0
        var pos = 0                // index in buffer of the next frame
        var records = 0
        var eof = false

        while true {
            // Refill when the next frame header or payload is not wholly in the buffer.
            let need: Int
            if filled - pos >= frameHeaderSize {
                let len = buffer.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: pos, as: UInt32.self))) }
                if len > maxPayload {
                    return ScanResult(end: bufferStart + pos, stop: .damaged(reason: "length \(len) exceeds the maximum record size"), records: records)
                }
                need = frameHeaderSize + len
            } else {
                need = frameHeaderSize
            }
            if filled - pos < need {
                if eof {
                    let stop: Stop = filled == pos ? .clean : .incomplete
                    return ScanResult(end: bufferStart + pos, stop: stop, records: records)
                }
                // Slide the unread tail to the front, grow if one frame is larger than the buffer.
                if pos > 0 {
                    buffer.withUnsafeMutableBytes { b in
                        _ = memmove(b.baseAddress!, b.baseAddress! + pos, filled - pos)
                    }
                    bufferStart += pos
                    filled -= pos
                    pos = 0
                }
                if buffer.count < need { buffer.append(contentsOf: [UInt8](repeating: 0, count: need - buffer.count)) }
                let n = try readSome(fd: fd, into: &buffer, at: filled, fileOffset: bufferStart + filled)
                if n == 0 { eof = true }
                filled += n
                continue
            }
            let decoded: Result<E, Stop> = buffer.withUnsafeBytes { b in
                let stored = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: pos + 4, as: UInt32.self))
                let payload = UnsafeRawBufferPointer(rebasing: b[(pos + frameHeaderSize)..<(pos + need)])
                guard CRC32C.mask(CRC32C.checksum(payload)) == stored else { return .failure(.damaged(reason: "checksum mismatch")) }
                guard let record = E.decode(payload) else {
                    return .failure(.damaged(reason: "record of \(payload.count) bytes does not decode"))
                }
                return .success(record)
            }
            let record: E
            switch decoded {
            case .success(let r): record = r
            case .failure(let stop): return ScanResult(end: bufferStart + pos, stop: stop, records: records)
            }
            body(record, bufferStart + pos, need)
            records += 1
            pos += need
        }
    }

    /// After damage at `offset`: is there any valid record later in the file? That tells a torn
    /// tail (cut it and go on) from damage in the middle (refuse, someone must look).
    public static func validRecordExists(fd: Int32, after offset: Int, fileSize: Int) throws(StoreError) -> Int? {
        try validRecordExists(fd: fd, after: offset, fileSize: fileSize, as: LogRecord.self, kind: .events)
    }

    public static func validRecordExists<E: LogEntry>(fd: Int32, after offset: Int, fileSize: Int, as: E.Type,
                                                      kind: LogKind) throws(StoreError) -> Int? {
        let maxPayload = kind.maxPayload
        var probe = offset + 1
        let window = 1 << 20
        // A window and the largest frame that may start in it, but never more than the file holds.
        var buffer = [UInt8](repeating: 0, count: max(0, min(window + maxPayload + frameHeaderSize, fileSize - probe)))
        while probe + frameHeaderSize <= fileSize {
            let want = min(buffer.count, fileSize - probe)
            var got = 0
            while got < want {
                let n = try readSome(fd: fd, into: &buffer, at: got, fileOffset: probe + got, limit: want - got)
                if n == 0 { break }
                got += n
            }
            let found: Int? = buffer.withUnsafeBytes { b in
                var k = 0
                while k < min(window, got) && k + frameHeaderSize <= got {
                    let len = Int(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: k, as: UInt32.self)))
                    if len > 0 && len <= maxPayload && k + frameHeaderSize + len <= got {
                        let stored = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: k + 4, as: UInt32.self))
                        let payload = UnsafeRawBufferPointer(rebasing: b[(k + frameHeaderSize)..<(k + frameHeaderSize + len)])
                        if CRC32C.mask(CRC32C.checksum(payload)) == stored, E.decode(payload) != nil {
                            return probe + k
                        }
                    }
                    k += 1
                }
                return nil
            }
            if let found { return found }
            probe += window
        }
        return nil
    }

    static func readSome(fd: Int32, into buffer: inout [UInt8], at index: Int, fileOffset: Int, limit: Int? = nil) throws(StoreError) -> Int {
        let count = limit ?? (buffer.count - index)
        while true {
            let n = buffer.withUnsafeMutableBytes { b in pread(fd, b.baseAddress! + index, count, off_t(fileOffset)) }
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw StoreError.io("read failed: \(String(cString: strerror(errno)))")
        }
    }
}
