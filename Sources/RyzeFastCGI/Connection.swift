import CFastCGI
import RyzeCore
#if canImport(Glibc)
import Glibc
#endif

/// The requests of one connection, one at a time.
///
/// Who owns the connection's fd: from `adopt` on, the `FCGX_Request`, and `ipcFd < 0` means
/// there is no connection. libfcgi closes it itself (and sets -1) when a request is broken or
/// cannot be answered; `finish` closes it when nginx did not ask to keep it; FCGX_Free(_, 1)
/// closes a kept one when its thread stops. Nobody else closes it.
///
/// When the request's data dies: `envp` (and so every pointer in `RequestParameters`), the
/// streams and the parameters live from FCGX_Accept_r to FCGX_Finish_r, that is within
/// `serveNextRequest`; what outlives it is copied into the HTTPRequest.
extension FastCGIServer {
    /// Hands an accepted connection to `request`, which owns it from here on.
    func adopt(_ fd: Int32, into request: inout FCGX_Request) {
        request.ipcFd = fd
        // FCGX_Accept_r starts by finishing the previous request, which closes ipcFd unless the
        // connection is marked kept; the begin record then sets the real flag.
        request.keepConnection = 1
    }

    /// Reads the next request on the connection, answers it and finishes it. false when no
    /// complete request came (a peer that closed, sent nothing in time or broke the protocol):
    /// libfcgi has then closed the connection.
    func serveNextRequest(_ request: inout FCGX_Request, thread: Int) -> Bool {
        guard FCGX_Accept_r(&request) >= 0 else { return false }
        statistics.requestStarted(thread: thread)
        serve(&request)
        // Counted once its answer is complete and before it is sent, so that a client that reads
        // the status page after getting its own answer finds that answer counted.
        statistics.requestFinished(thread: thread)
        finish(&request)
        return true
    }

    private func serve(_ raw: inout FCGX_Request) {
        let started = logsAccess ? monotonicSeconds() : 0   // the clock only for the access line
        guard let request = FastCGIServer.readRequest(&raw, maxBody: configuration.maxBodyBytes) else {
            logger.warning("request body did not arrive in time; connection dropped")
            FCGX_SetExitStatus(1, raw.out)
            return
        }
        let response = handler(request)
        FastCGIServer.writeResponse(response, to: raw.out)
        if response.status.code >= 500 {
            FCGX_PutS("ryze-events[\(getpid())]: \(request.method) \(request.path) -> \(response.status.code)\n", raw.err)
        }
        if logsAccess {
            // The path only: a token may travel in the query string.
            let micros = Int((monotonicSeconds() - started) * 1_000_000)
            accessLogger.info("\(request.method) \(request.path) \(response.status.code)", metadata: ["duration_us": "\(micros)"])
        }
    }

    /// Ends the request. When nginx did not ask to keep the connection, closes it at once instead
    /// of letting libfcgi do it: libfcgi shuts down its side and then waits in poll() until nginx
    /// has read the answer and closed too, which costs three system calls and a sleep per request.
    /// A plain close is safe because serve() has read the request to the end of its stdin, so
    /// nothing unread is left to turn the close into a reset.
    private func finish(_ request: inout FCGX_Request) {
        let closeHere = request.keepConnection == 0
        request.keepConnection = 1
        FCGX_Finish_r(&request)
        // libfcgi closed it itself (and set -1) if writing the answer failed or the request broke.
        if closeHere && request.ipcFd >= 0 {
            close(request.ipcFd)
            request.ipcFd = -1
        }
    }

    /// Serves one connection already open, on the calling thread, until it closes: what a request
    /// thread does with a connection it accepted, without the accept and the stop. Takes `fd`
    /// over (it is closed on return). `thread` is the WorkerStatistics slot to count in, which no
    /// other thread may be using. For the adapter's tests, which drive it over a socketpair.
    func serveConnection(fd: Int32, thread: Int = 0) {
        precondition(FastCGIServer.libraryStatus == 0, "FCGX_Init failed")
        Signals.blockWake()   // as in a request thread: no wake may break a read (see Signals)
        prepareConnection(fd)
        var request = FCGX_Request()
        FCGX_InitRequest(&request, -1, 0)
        defer { FCGX_Free(&request, 1) }
        adopt(fd, into: &request)
        while request.ipcFd >= 0 && serveNextRequest(&request, thread: thread) {}
    }
}
