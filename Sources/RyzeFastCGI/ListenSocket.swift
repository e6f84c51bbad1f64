import CFastCGI
#if canImport(Glibc)
import Glibc
#endif

/// The socket every request thread accepts from. It belongs to the process and is never closed:
/// fd 0 as spawn-fcgi or multiwatch hand it over (shared with the other workers, whose
/// connections wait in its backlog while one is replaced), or one opened for --listen.
struct ListenSocket: Sendable {
    let fd: Int32
    /// TCP: accepted connections get TCP_NODELAY.
    let isInet: Bool

    static func open(_ listen: String?) throws -> ListenSocket {
        let fd = try openDescriptor(listen)
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &length) } }
        let family = address.ss_family
        return ListenSocket(fd: fd, isInet: family == sa_family_t(AF_INET) || family == sa_family_t(AF_INET6))
    }

    private static func openDescriptor(_ listen: String?) throws -> Int32 {
        guard let listen else {
            var st = stat()
            guard fstat(0, &st) == 0, (st.st_mode & S_IFMT) == S_IFSOCK else {
                throw FastCGIServer.Failure.noSocket("no FastCGI socket on fd 0: start under spawn-fcgi or multiwatch, or pass --listen unix:PATH or --listen HOST:PORT")
            }
            return 0
        }
        let target: String
        if listen.hasPrefix("unix:") {
            target = String(listen.dropFirst(5))
            unlink(target)
        } else {
            target = listen
        }
        let fd = FCGX_OpenSocket(target, 1024)
        guard fd >= 0 else { throw FastCGIServer.Failure.noSocket("cannot listen on \(listen): \(String(cString: strerror(errno)))") }
        if listen.hasPrefix("unix:") {
            // nginx's workers run as another user; guard the socket with its directory's mode.
            chmod(target, 0o666)
        }
        return fd
    }
}

extension FastCGIServer {
    /// One connection from the listen socket, ready to serve, or -1 (interrupted by a stop, or a
    /// passing error). The only call of a request thread that a stop interrupts (see `Signals`).
    /// The caller owns the connection it returns.
    func acceptConnection() -> Int32 {
        let fd = Signals.wakeable { accept(listenSocket.fd, nil, nil) }
        if fd < 0 {
            switch errno {
            case EINTR, EAGAIN, ECONNABORTED, EPROTO: break
            default:
                logger.warning("accept failed", metadata: ["error": "\(String(cString: strerror(errno)))"])
                usleep(10_000)
            }
            return -1
        }
        prepareConnection(fd)
        return fd
    }

    /// One system call per connection, no more: the read timeout (libfcgi has none; without it a
    /// peer that stops sending holds a thread forever), and TCP_NODELAY on TCP. No FD_CLOEXEC
    /// (this process never execs) and no send timeout (nginx reads responses at once; the read
    /// side is what a peer can stall).
    func prepareConnection(_ fd: Int32) {
        if let seconds = configuration.readTimeoutSeconds {
            var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }
        if listenSocket.isInet {
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
    }
}
