#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A minimal HTTP/1.1 server on 127.0.0.1 and a free port, on a thread of the test process: one
/// request per connection (it answers `Connection: close`), handled by `handler`. Enough to
/// see exactly what libcurl sends and to answer as a webhook receiver might, slow ones included.
final class TestServer: @unchecked Sendable {
    struct Request: Sendable {
        var method: String
        var target: String
        /// Names lower-cased, in order.
        var headers: [(String, String)]
        var body: [UInt8]

        func header(_ name: String) -> String? { headers.first { $0.0 == name.lowercased() }?.1 }
    }

    struct Reply: Sendable {
        var status: Int
        var headers: [(String, String)] = []
        var body: [UInt8] = []
        /// Seconds to wait before answering.
        var delay: Double = 0
    }

    let port: Int
    private let listener: Int32
    private let lock = NSLock()
    private var received: [Request] = []
    private let handler: @Sendable (Request) -> Reply

    /// Listens on `address` (any of 127/8 on Linux) and `port` (0: a free one).
    init(address: String = "127.0.0.1", port wanted: Int = 0, _ handler: @escaping @Sendable (Request) -> Reply) throws {
        self.handler = handler
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr(address)
        addr.sin_port = UInt16(wanted).bigEndian
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 64) == 0 else { throw POSIXError(.EADDRINUSE) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        listener = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    private var closed = false

    /// Stops accepting; connections being handled finish on their own. Only the accept thread
    /// closes the listening descriptor, once it has left accept(2): closed here, its number could
    /// be given to another test's socket while that thread still accepts on it.
    func close() {
        lock.withLock { closed = true }
        shutdown(listener, Int32(SHUT_RDWR))
    }

    var requests: [Request] { lock.withLock { received } }

    private func acceptLoop() {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EINTR && !lock.withLock({ closed }) { continue }
                Glibc.close(listener)
                return
            }
            let t = Thread { [self] in serve(fd) }
            t.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer { Glibc.close(fd) }
        guard let request = read(fd) else { return }
        lock.withLock { received.append(request) }
        let reply = handler(request)
        if reply.delay > 0 { usleep(UInt32(reply.delay * 1_000_000)) }
        var head = "HTTP/1.1 \(reply.status) X\r\nContent-Length: \(reply.body.count)\r\nConnection: close\r\n"
        for (n, v) in reply.headers { head += "\(n): \(v)\r\n" }
        head += "\r\n"
        let bytes = Array(head.utf8) + reply.body
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    private func read(_ fd: Int32) -> Request? {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var headerEnd: Int?
        var contentLength = 0
        while true {
            if let end = headerEnd, data.count >= end + contentLength { break }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n <= 0 { return nil }
            data += chunk[0..<n]
            if headerEnd == nil, let r = find(data, Array("\r\n\r\n".utf8)) {
                headerEnd = r + 4
                let head = String(decoding: data[0..<r], as: UTF8.self)
                for line in head.split(separator: "\r\n").dropFirst() where line.lowercased().hasPrefix("content-length:") {
                    contentLength = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
                }
            }
        }
        let head = String(decoding: data[0..<(headerEnd! - 4)], as: UTF8.self)
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let first = lines[0].split(separator: " ")
        var headers: [(String, String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        return Request(method: String(first[0]), target: String(first[1]), headers: headers,
                       body: Array(data[headerEnd!..<(headerEnd! + contentLength)]))
    }

    private func find(_ haystack: [UInt8], _ needle: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
        return nil
    }
}
