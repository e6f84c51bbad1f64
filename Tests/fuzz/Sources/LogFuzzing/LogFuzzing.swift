@testable import RyzeCore
#if canImport(Glibc)
import Glibc
#endif

/// What fuzz-logrecord and fuzz-queuerecord share: the readers of a log of the data directory
/// (`events.log`, `deliveries.log`), which meet whatever a crash, a full disk or a bad disk left
/// in the file. For records of type `E`, over one input:
///
/// 1. `E.decode` over the input as one payload; a record it returns encodes to bytes that decode
///    to a record encoding to the same bytes (encoding may normalise, e.g. cut long texts, but
///    only once).
/// 2. `LogFormat.scan` over a file made of the input as it is (a torn or garbage log; past the
///    header when the input starts with a valid one): it stops within the file, its records lie
///    back to back from the start, and after damage `validRecordExists` (the torn-tail-or-damage
///    question) answers with an offset inside the file, past the damage.
/// 3. `LogFormat.scan` over frames with good checksums around pieces of the input (each piece a
///    little-endian u16 length and that many bytes), so that the decoder is reached through the
///    scanner: it returns exactly the leading pieces that decode.
///
/// Every record found goes to `found`, in order, for the target to fold.
public enum LogFuzzing {
    /// One scratch file per process, on tmpfs when there is one, rewritten for every input.
    nonisolated(unsafe) static var file: (fd: Int32, path: String) = (-1, "")

    public static func run<E: LogEntry>(_ input: UnsafeBufferPointer<UInt8>, kind: LogKind, as: E.Type,
                                        same: (E, E) -> Bool, found: (E) -> Void) {
        openFile()
        let size = input.count

        // 1. One payload.
        if let record = E.decode(UnsafeRawBufferPointer(input)) {
            let bytes = record.encode()
            guard let again = bytes.withUnsafeBytes({ E.decode($0) }) else { fatalError("encode(\(record)) does not decode") }
            if again.encode() != bytes { fatalError("encoding \(record) is not a fixed point") }
            if !same(record, again) { fatalError("decode(encode(r)) differs from r = \(record)") }
            found(record)
        }

        // 2. The input as a log file.
        replaceFile(with: Array(input))
        let start = LogFormat.isValidHeader(Array(input.prefix(LogFormat.headerSize))[...], kind) ? LogFormat.headerSize : 0
        var records = 0
        var next = start
        let raw: LogFormat.ScanResult
        do {
            raw = try LogFormat.scan(fd: file.fd, from: start, kind: kind, chunk: 64) { (record: E, offset, frameSize) in
                if offset != next { fatalError("record at \(offset), expected \(next)") }
                next = offset + frameSize
                records += 1
                found(record)
            }
        } catch {
            fatalError("scan of a regular file failed: \(error)")
        }
        if raw.end != next || raw.records != records || raw.end > size { fatalError("scan result \(raw) after \(records) records") }
        if raw.stop != .clean {
            do {
                if let at = try LogFormat.validRecordExists(fd: file.fd, after: raw.end, fileSize: size, as: E.self, kind: kind),
                   at <= raw.end || at >= size {
                    fatalError("validRecordExists answered \(at) for a file of \(size) bytes damaged at \(raw.end)")
                }
            } catch {
                fatalError("validRecordExists on a regular file failed: \(error)")
            }
        }

        // 3. Pieces of the input in frames with good checksums.
        var log: [UInt8] = []
        var decodable = 0
        var stillDecoding = true
        var k = 0
        while k + 2 <= size {
            let n = min(Int(input[k]) | Int(input[k + 1]) << 8, size - k - 2)
            let payload = Array(input[(k + 2)..<(k + 2 + n)])
            k += 2 + n
            for v in [UInt32(n), CRC32C.mask(CRC32C.checksum(payload))] {
                for b in 0..<4 { log.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(b)))) }
            }
            log += payload
            if stillDecoding, payload.withUnsafeBytes({ E.decode($0) }) != nil { decodable += 1 } else { stillDecoding = false }
        }
        replaceFile(with: log)
        do {
            let framed = try LogFormat.scan(fd: file.fd, from: 0, kind: kind, chunk: 64) { (record: E, _, _) in found(record) }
            if framed.records != decodable { fatalError("scan read \(framed.records) records of \(decodable) decodable") }
        } catch {
            fatalError("scan of a regular file failed: \(error)")
        }
    }

    private static func openFile() {
        guard file.fd < 0 else { return }
        var template = Array((access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp").utf8CString.dropLast())
        template += Array("/ryze-fuzz-log-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { fatalError("mkstemp failed") }
        file = (fd, template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        atexit { unlink(LogFuzzing.file.path) }
    }

    private static func replaceFile(with bytes: [UInt8]) {
        guard ftruncate(file.fd, 0) == 0,
              bytes.withUnsafeBytes({ pwrite(file.fd, $0.baseAddress, $0.count, 0) }) == bytes.count else { fatalError("cannot write \(file.path)") }
    }
}
