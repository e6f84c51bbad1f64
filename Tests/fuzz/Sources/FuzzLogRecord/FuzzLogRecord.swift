@testable import RyzeCore
#if canImport(Glibc)
import Glibc
import CLibFuzzer
#endif

/// fuzz-logrecord: the readers of the data directory's log, which meet whatever a crash, a full
/// disk or a bad disk left in the file.
///
/// 1. `LogRecord.decode` over the input as one payload; a record it returns re-encodes to a
///    payload that decodes to the same record.
/// 2. `LogFormat.scan` over a file made of the input as it is (a torn or garbage log); it stops
///    within the file, its records lie back to back from the start, and `validRecordExists`
///    (the torn-tail-or-damage question) answers without reading past the end.
/// 3. `LogFormat.scan` over a file of frames with correct checksums around pieces of the input
///    (each piece a little-endian u16 length and that many bytes), so that the decoder is reached
///    through the scanner: it returns exactly the leading pieces that decode, in order.
/// Records found are folded into a `State`, as a replay does.
let file: (fd: Int32, path: String) = {
    var template = Array((access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp").utf8CString.dropLast())
    template += Array("/ryze-fuzz-log-XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    guard fd >= 0 else { fatalError("mkstemp failed") }
    let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    atexit { unlink(file.path) }
    return (fd, path)
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLogRecord(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    var state = State()

    // 1. One payload.
    if let record = LogRecord.decode(UnsafeRawBufferPointer(input)) {
        let again = record.encode().withUnsafeBytes { LogRecord.decode($0) }
        if again != record { fatalError("decode(encode(r)) != r for \(record)") }
        state.apply(record)
    }

    // 2. The input as a log file: past the header when it starts with a valid one (a real log,
    // as the seeds are), else from the first byte.
    replaceFile(with: Array(input))
    let start = LogFormat.isValidHeader(Array(input.prefix(LogFormat.headerSize))[...]) ? LogFormat.headerSize : 0
    var offsets: [Int] = []
    var next = start
    let raw: LogFormat.ScanResult
    do {
        raw = try LogFormat.scan(fd: file.fd, from: start, chunk: 64) { (record: LogRecord, offset, frameSize) in
            if offset != next { fatalError("record at \(offset), expected \(next)") }
            next = offset + frameSize
            offsets.append(offset)
            state.apply(record)
        }
    } catch {
        fatalError("scan of a regular file failed: \(error)")
    }
    if raw.end != next || raw.records != offsets.count || raw.end > size { fatalError("scan result \(raw) after \(offsets)") }
    if raw.stop != .clean, size > 0 {
        do {
            if let found = try LogFormat.validRecordExists(fd: file.fd, after: raw.end, fileSize: size), found <= raw.end || found >= size {
                fatalError("validRecordExists answered \(found) for a file of \(size) bytes damaged at \(raw.end)")
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
        let crc = CRC32C.mask(CRC32C.checksum(payload))
        for v in [UInt32(n), crc] { for b in 0..<4 { log.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(b)))) } }
        log += payload
        if stillDecoding, payload.withUnsafeBytes({ LogRecord.decode($0) }) != nil { decodable += 1 } else { stillDecoding = false }
    }
    replaceFile(with: log)
    do {
        let framed = try LogFormat.scan(fd: file.fd, from: 0, chunk: 64) { (record: LogRecord, _, _) in state.apply(record) }
        if framed.records != decodable { fatalError("scan read \(framed.records) records of \(decodable) decodable") }
    } catch {
        fatalError("scan of a regular file failed: \(error)")
    }
    return 0
}

func replaceFile(with bytes: [UInt8]) {
    guard ftruncate(file.fd, 0) == 0,
          bytes.withUnsafeBytes({ pwrite(file.fd, $0.baseAddress, $0.count, 0) }) == bytes.count else { fatalError("cannot write \(file.path)") }
}

@main enum FuzzLogRecordMain {
    static func main() { exit(ryze_run_fuzzer(CommandLine.argc, CommandLine.unsafeArgv, fuzzLogRecord)) }
}
