import CFastCGI
import RyzeCore

extension FastCGIServer {
    /// The request libfcgi has just accepted, as an HTTPRequest: its declared parameters found in
    /// one pass over `envp` (names and meaning live in RyzeCore: `RequestParameter`,
    /// `HTTPRequest(parameters:)`), and its body. nil when the declared body did not arrive (the
    /// read timed out or the peer went away). Reads stdin to its end in every case, so that
    /// finish() may close the connection outright.
    static func readRequest(_ raw: inout FCGX_Request, maxBody: Int) -> HTTPRequest? {
        // Pointers into libfcgi's copies of the parameters: valid until FCGX_Finish_r, and the
        // HTTPRequest built below copies what it keeps.
        let parameters = RequestParameters(environment: raw.envp)
        let length = parameters.contentLength
        var body: [UInt8] = []
        var tooLarge = false
        if length > maxBody {
            tooLarge = true
            // Read and drop it: leaving it unread would make nginx see a broken connection.
            var sink = [UInt8](repeating: 0, count: 64 * 1024)
            while sink.withUnsafeMutableBytes({ FCGX_GetStr($0.baseAddress!.assumingMemoryBound(to: CChar.self), Int32($0.count), raw.in) }) > 0 {}
        } else if length > 0 {
            body = [UInt8](repeating: 0, count: length)
            var got = 0
            while got < length {
                let n = body.withUnsafeMutableBytes {
                    FCGX_GetStr(($0.baseAddress! + got).assumingMemoryBound(to: CChar.self), Int32(length - got), raw.in)
                }
                if n <= 0 { break }
                got += Int(n)
            }
            if got < length { return nil }
        }
        // The end-of-stdin record (usually already in libfcgi's buffer, so no system call).
        while FCGX_GetChar(raw.in) >= 0 {}
        return HTTPRequest(parameters: parameters, body: body, bodyTooLarge: tooLarge)
    }
}
