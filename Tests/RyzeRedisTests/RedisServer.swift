import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A throwaway redis-server on loopback for one test: no persistence, stopped by its pid.
/// deploy/install-deps.sh installs redis-server.
final class RedisServer {
    let port: Int
    let directory: String
    var pidFile: String { directory + "/redis.pid" }

    init(port: Int? = nil) throws {
        self.port = port ?? RedisServer.freePort()
        directory = NSTemporaryDirectory() + "ryze-redis-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try start()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func start() throws {
        // posix_spawn and waitpid rather than Foundation's Process, whose waitUntilExit waited
        // forever here for the daemonizing parent.
        let arguments = ["/usr/bin/redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                         "--daemonize", "yes", "--pidfile", pidFile, "--dir", directory, "--logfile", directory + "/redis.log"]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var child: pid_t = 0
        guard posix_spawn(&child, arguments[0], nil, nil, &argv, environ) == 0 else {
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "cannot run redis-server"])
        }
        var status: Int32 = 0
        waitpid(child, &status, 0)
        for _ in 0..<200 {
            if RedisServer.accepts(port: port) { return }
            usleep(10_000)
        }
        throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "redis-server did not start on \(port)"])
    }

    var pid: pid_t? {
        guard let s = try? String(contentsOfFile: pidFile, encoding: .utf8) else { return nil }
        return pid_t(s.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Stops it and waits until the port is closed.
    func stop() {
        guard let pid else { return }
        kill(pid, SIGKILL)
        // The port, not the pid: the killed daemon may stay a zombie for a while under a PID 1
        // that is slow to reap.
        for _ in 0..<200 where RedisServer.accepts(port: port) { usleep(10_000) }
        try? FileManager.default.removeItem(atPath: pidFile)
    }

    static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(port).bigEndian)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
    }

    /// A port the kernel just handed out and took back: free, most likely, for a moment.
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: a.sin_port))
    }
}
