import Foundation
import Logging
import RyzeCore
@testable import RyzeFastCGI
#if canImport(Glibc)
import Glibc
#endif

struct ConnectionFailure: Error, CustomStringConvertible {
    var description: String
}

/// What the handler was given, in order.
final class Recorder: @unchecked Sendable {
    private let lock = NSLock()
    private var seen: [HTTPRequest] = []

    func record(_ request: HTTPRequest) { lock.withLock { seen.append(request) } }
    var requests: [HTTPRequest] { lock.withLock { seen } }
}

/// libfcgi set up once for the test process. FCGX_Init puts "shutdown pending" handlers on
/// SIGTERM and SIGUSR1 where none was set; the test process gets its own back, so that a test
/// runner stopped with SIGTERM still stops. (Its no-op SIGPIPE handler stays: a peer that went
/// away then fails a write instead of killing the tests.)
enum Library {
    static let ready: Bool = {
        var term = sigaction()
        var usr1 = sigaction()
        sigaction(SIGTERM, nil, &term)
        sigaction(SIGUSR1, nil, &usr1)
        let ok = FastCGIServer.libraryStatus == 0
        sigaction(SIGTERM, &term, nil)
        sigaction(SIGUSR1, &usr1, nil)
        return ok
    }()
}

/// The pthread serving an AdapterConnection, set once by that thread before the test goes on.
final class ServingThread: @unchecked Sendable {
    private let lock = NSLock()
    private var thread = pthread_t()
    func set(_ t: pthread_t) { lock.withLock { thread = t } }
    func get() -> pthread_t { lock.withLock { thread } }
}

/// One FastCGI connection to the adapter over a socketpair. The test holds one end and speaks
/// as nginx does; the other end is served by `FastCGIServer.serveConnection(fd:)` on a thread of
/// its own: libfcgi and the adapter's code from the first record read to the close, everything
/// but accept().
final class AdapterConnection {
    let server: FastCGIServer
    let recorder = Recorder()
    private let peer: Int32
    private let served = DispatchSemaphore(value: 0)
    private var pending: [UInt8] = []
    private(set) var sawEndOfStream = false

    /// This side gives up on a read after `patience` seconds, which fails the test: an answer,
    /// or the close after one, comes at once or not at all. `readTimeoutSeconds` bounds every
    /// read of the adapter; longer than `patience`, so that a connection the adapter should have
    /// closed is not closed by its read timeout in time to pass, and a test gone wrong still ends.
    init(maxBodyBytes: Int = 64, readTimeoutSeconds: Double = 15, patience: Int = 4,
         respond: @escaping @Sendable (HTTPRequest) -> HTTPResponse = { _ in .json(.ok, body: Array(#"{"ok":true}"#.utf8)) }) throws {
        guard Library.ready else { throw ConnectionFailure(description: "FCGX_Init failed") }
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else {
            throw ConnectionFailure(description: "socketpair: \(String(cString: strerror(errno)))")
        }
        peer = fds[0]
        var tv = timeval(tv_sec: patience, tv_usec: 0)
        setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var logger = Logger(label: "ryze.fastcgi.test")
        logger.logLevel = .critical
        let recorder = self.recorder
        server = FastCGIServer(configuration: .init(threads: 1, maxBodyBytes: maxBodyBytes, readTimeoutSeconds: readTimeoutSeconds),
                               logger: logger, handler: { request in
                                   recorder.record(request)
                                   return respond(request)
                               })
        let server = self.server
        let served = self.served
        let fd = fds[1]
        let started = DispatchSemaphore(value: 0)
        let serving = ServingThread()
        self.serving = serving
        Thread {
            // As a request thread starts in production (its mask inherited from run()'s thread):
            // Foundation's threads begin with every signal blocked.
            var alarm = sigset_t()
            sigemptyset(&alarm)
            sigaddset(&alarm, SIGALRM)
            pthread_sigmask(SIG_UNBLOCK, &alarm, nil)
            serving.set(pthread_self())
            started.signal()
            server.serveConnection(fd: fd)
            served.signal()
        }.start()
        started.wait()
    }

    private let serving: ServingThread

    /// Sends `signal` to the thread serving this connection.
    func signalServingThread(_ signal: Int32) { pthread_kill(serving.get(), signal) }

    deinit { close(peer) }

    func send(_ bytes: [UInt8]) throws {
        var at = 0
        while at < bytes.count {
            let n = bytes[at...].withUnsafeBytes { Glibc.send(peer, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw ConnectionFailure(description: "send: \(String(cString: strerror(errno)))") }
            at += n
        }
    }

    /// No more requests from this side (nginx closing its end of a kept connection).
    func shutdownWrite() { shutdown(peer, Int32(SHUT_WR)) }

    /// Everything the adapter sent up to and including the END_REQUEST record.
    func readAnswer() throws -> Answer {
        var records: [Record] = []
        while true {
            records += Record.parse(&pending)
            if records.contains(where: { $0.type == FCGI.endRequest }) { return Answer(records: records) }
            guard try readMore() else {
                throw ConnectionFailure(description: "connection closed before END_REQUEST; got \(records)")
            }
        }
    }

    /// Waits for the adapter to close the connection; true when it did without sending more.
    func closedByAdapter() throws -> Bool {
        while try readMore() {}
        return pending.isEmpty
    }

    /// true when the adapter has returned from serveConnection, that is closed its end.
    func servedToTheEnd(within seconds: Double = 5) -> Bool {
        served.wait(timeout: .now() + seconds) == .success
    }

    /// Reads what is there; false at the end of the stream. A close with unread data on the
    /// adapter's side shows as ECONNRESET on a unix socket: also the end.
    private func readMore() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        let n = chunk.withUnsafeMutableBytes { read(peer, $0.baseAddress, $0.count) }
        if n > 0 {
            pending += chunk[..<n]
            return true
        }
        if n == 0 || errno == ECONNRESET {
            sawEndOfStream = true
            return false
        }
        throw ConnectionFailure(description: "read: \(String(cString: strerror(errno)))")
    }
}
