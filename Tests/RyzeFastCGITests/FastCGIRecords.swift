/// FastCGI records built and taken apart by hand, as the FastCGI specification lays them out
/// (version 1), so that the tests speak to libfcgi as nginx does without trusting libfcgi to
/// encode them. The model is Go's net/http/fcgi child_test.go.
enum FCGI {
    static let beginRequest: UInt8 = 1
    static let endRequest: UInt8 = 3
    static let params: UInt8 = 4
    static let stdin: UInt8 = 5
    static let stdout: UInt8 = 6
    static let stderr: UInt8 = 7

    static let responder: UInt16 = 1
    static let keepConnectionFlag: UInt8 = 1

    /// One record. Content is padded to a multiple of 8 bytes, as nginx pads it.
    static func record(_ type: UInt8, id: UInt16, _ content: [UInt8]) -> [UInt8] {
        precondition(content.count <= 0xFFFF)
        let padding = (8 - content.count % 8) % 8
        return [1, type, UInt8(id >> 8), UInt8(id & 0xFF), UInt8(content.count >> 8), UInt8(content.count & 0xFF), UInt8(padding), 0]
            + content + [UInt8](repeating: 0, count: padding)
    }

    static func begin(id: UInt16 = 1, role: UInt16 = responder, keepConnection: Bool = false) -> [UInt8] {
        record(beginRequest, id: id, [UInt8(role >> 8), UInt8(role & 0xFF), keepConnection ? keepConnectionFlag : 0, 0, 0, 0, 0, 0])
    }

    /// A name-value pair: each length in one byte below 128, else in four with the top bit set.
    static func pair(_ name: String, _ value: String) -> [UInt8] {
        func length(_ n: Int) -> [UInt8] {
            n < 128 ? [UInt8(n)] : [UInt8(n >> 24) | 0x80, UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)]
        }
        return length(name.utf8.count) + length(value.utf8.count) + Array(name.utf8) + Array(value.utf8)
    }

    /// A stream (PARAMS, STDIN): the bytes cut into records of at most `chunk` bytes, wherever
    /// the cut falls, then the empty record that ends the stream.
    static func stream(_ type: UInt8, id: UInt16, _ bytes: [UInt8], chunk: Int = 0xFFFF) -> [UInt8] {
        var out: [UInt8] = []
        var at = 0
        while at < bytes.count {
            let end = min(at + chunk, bytes.count)
            out += record(type, id: id, Array(bytes[at..<end]))
            at = end
        }
        return out + record(type, id: id, [])
    }

    /// A whole request as nginx sends it: begin, parameters, body.
    static func request(id: UInt16 = 1, keepConnection: Bool = false, _ parameters: [(String, String)],
                        body: [UInt8] = [], bodyChunk: Int = 0xFFFF, paramsChunk: Int = 0xFFFF) -> [UInt8] {
        begin(id: id, keepConnection: keepConnection)
            + stream(params, id: id, parameters.flatMap { pair($0.0, $0.1) }, chunk: paramsChunk)
            + stream(stdin, id: id, body, chunk: bodyChunk)
    }
}

struct Record: Equatable, CustomStringConvertible {
    var type: UInt8
    var id: UInt16
    var content: [UInt8]

    var description: String { "Record(type: \(type), id: \(id), \(content.count) bytes)" }

    /// Takes the complete records off the front of `buffer`.
    static func parse(_ buffer: inout [UInt8]) -> [Record] {
        var records: [Record] = []
        while buffer.count >= 8 {
            precondition(buffer[0] == 1, "not a FastCGI version 1 record")
            let length = Int(buffer[4]) << 8 | Int(buffer[5])
            let total = 8 + length + Int(buffer[6])
            guard buffer.count >= total else { break }
            records.append(Record(type: buffer[1], id: UInt16(buffer[2]) << 8 | UInt16(buffer[3]), content: Array(buffer[8..<8 + length])))
            buffer.removeFirst(total)
        }
        return records
    }
}

/// The adapter's answer to one request, taken apart.
struct Answer {
    var records: [Record]

    var stdout: [UInt8] { records.filter { $0.type == FCGI.stdout }.flatMap(\.content) }
    var stderr: [UInt8] { records.filter { $0.type == FCGI.stderr }.flatMap(\.content) }
    var text: String { String(decoding: stdout, as: UTF8.self) }
    var errorText: String { String(decoding: stderr, as: UTF8.self) }

    /// The END_REQUEST record's application status and protocol status.
    var end: (appStatus: UInt32, protocolStatus: UInt8)? {
        guard let e = records.last(where: { $0.type == FCGI.endRequest }), e.content.count == 8 else { return nil }
        let app = e.content[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return (app, e.content[4])
    }

    /// Each output stream ends with its empty record, and END_REQUEST comes last, for `id`.
    func isWellFormed(id: UInt16) -> Bool {
        guard let last = records.last, last.type == FCGI.endRequest, last.id == id else { return false }
        guard records.allSatisfy({ $0.id == id }) else { return false }
        let outs = records.filter { $0.type == FCGI.stdout }
        let errs = records.filter { $0.type == FCGI.stderr }
        let streamsEnd = outs.last?.content.isEmpty == true && outs.dropLast().allSatisfy { !$0.content.isEmpty }
        let errorsEnd = errs.isEmpty || (errs.last?.content.isEmpty == true && errs.dropLast().allSatisfy { !$0.content.isEmpty })
        return streamsEnd && errorsEnd
    }
}
