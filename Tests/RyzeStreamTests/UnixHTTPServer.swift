import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.1 server on a unix socket, standing in for nginx's publisher location: it
/// records each request and answers it with `status` (or not at all, to test timeouts), one
/// connection at a time, closing each after its answer.
final class UnixHTTPServer: @unchecked Sendable {
    struct Seen: Sendable {
        var method: String
        var path: String
        var headers: [String: String]
        var body: [UInt8]
    }

    let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var seen: [Seen] = []
    private var status: Int
    private let answers: Bool

    init(status: Int, answers: Bool = true) throws {
        path = NSTemporaryDirectory() + "ryze-stream-test-\(getpid())-\(UInt32.random(in: 0 ... .max)).sock"
        self.status = status
        self.answers = answers
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8)
            raw.copyBytes(from: bytes.prefix(raw.count - 1))
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else { throw POSIXError(.EADDRINUSE) }
        Thread.detachNewThread { [self] in serve() }
    }

    deinit {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        unlink(path)
    }

    var requests: [Seen] { lock.withLock { seen } }

    func answer(with status: Int) { lock.withLock { self.status = status } }

    private func serve() {
        while true {
            let connection = accept(fd, nil, nil)
            guard connection >= 0 else { return }
            handle(connection)
        }
    }

    private func handle(_ connection: Int32) {
        defer { close(connection) }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        func fill() -> Bool {
            let n = chunk.withUnsafeMutableBytes { read(connection, $0.baseAddress, $0.count) }
            guard n > 0 else { return false }
            buffer += chunk[..<n]
            return true
        }
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        var headEnd: Int?
        while headEnd == nil {
            guard fill() else { return }
            headEnd = buffer.firstRange(of: separator)?.upperBound
        }
        let head = String(decoding: buffer[..<headEnd!], as: UTF8.self).split(separator: "\r\n")
        let requestLine = head[0].split(separator: " ")
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        while buffer.count - headEnd! < length {
            guard fill() else { return }
        }
        let body = Array(buffer[headEnd! ..< headEnd! + length])
        let status = lock.withLock { () -> Int in
            seen.append(Seen(method: String(requestLine[0]), path: String(requestLine[1]), headers: headers, body: body))
            return self.status
        }
        guard answers else {
            // Holds the connection without answering until the client gives up.
            while fill() {}
            return
        }
        let response = "HTTP/1.1 \(status) X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        _ = response.utf8CString.withUnsafeBytes { write(connection, $0.baseAddress, $0.count - 1) }
    }
}
