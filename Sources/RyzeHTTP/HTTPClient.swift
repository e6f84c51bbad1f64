import CCurl
#if canImport(Glibc)
import Glibc
#endif

/// A blocking HTTP client over libcurl (Debian's libcurl4-openssl-dev): the deliverer's webhook
/// requests and the workers' hand-off to nginx's WebSocket fan-out. One `HTTPClient` per thread:
/// a curl easy handle is not thread-safe, and keeping one per thread keeps its connections alive
/// between requests.
///
/// Never follows redirects (a 3xx is an answer like any other), sends no cookies, and keeps no
/// state between requests but libcurl's connection cache.
public final class HTTPClient {
    public struct Request: Sendable {
        public var method: String
        public var url: String
        public var headers: [(String, String)]
        public var body: [UInt8]
        /// Whole-request limit, seconds.
        public var timeout: Double
        public var connectTimeout: Double
        /// Connect to this unix socket instead of the URL's host (nginx's internal publisher).
        public var unixSocket: String?
        /// Connect to this address for the URL's host and port (resolved and checked by the
        /// caller), so that what was checked is what is connected to. Several, comma-separated,
        /// are tried in turn as libcurl tries a name's addresses (an IPv4-only receiver behind a
        /// name that also has an IPv6 address is still reached).
        public var pinnedAddress: String?

        public init(method: String, url: String, headers: [(String, String)] = [], body: [UInt8] = [],
                    timeout: Double = 15, connectTimeout: Double = 5, unixSocket: String? = nil, pinnedAddress: String? = nil) {
            self.method = method
            self.url = url
            self.headers = headers
            self.body = body
            self.timeout = timeout
            self.connectTimeout = connectTimeout
            self.unixSocket = unixSocket
            self.pinnedAddress = pinnedAddress
        }
    }

    public struct Response: Sendable {
        public var status: Int
        /// Names lower-cased, in order.
        public var headers: [(String, String)]
        public var body: [UInt8]

        public func header(_ name: String) -> String? {
            let n = name.lowercased()
            return headers.first(where: { $0.0 == n })?.1
        }
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case timeout
        /// Refused, reset, unreachable, DNS, TLS: libcurl's own words.
        case transport(String)

        public var description: String {
            switch self {
            case .timeout: return "timed out"
            case .transport(let m): return m
            }
        }
    }

    private let handle: UnsafeMutableRawPointer
    /// Longest response body kept (the rest is read and dropped): a webhook receiver's answer
    /// is logged, never stored whole.
    public let maxResponseBody: Int

    public init(maxResponseBody: Int = 64 * 1024) {
        HTTPClient.globalInit
        guard let h = curl_easy_init() else { preconditionFailure("curl_easy_init failed") }
        handle = h
        self.maxResponseBody = maxResponseBody
    }

    deinit { curl_easy_cleanup(handle) }

    /// libcurl's global set-up, once per process, before any thread makes a handle.
    private static let globalInit: Void = { _ = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    private final class Sink {
        var body: [UInt8] = []
        var headers: [(String, String)] = []
        let limit: Int
        init(limit: Int) { self.limit = limit }
    }

    public func perform(_ request: Request) -> Result<Response, Failure> {
        curl_easy_reset(handle)
        let sink = Sink(limit: maxResponseBody)
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }
        // Strings handed to libcurl must outlive perform: kept here until the end.
        var keep: [UnsafeMutablePointer<CChar>] = []
        defer { for p in keep { free(p) } }
        func cString(_ s: String) -> UnsafeMutablePointer<CChar> {
            let p = strdup(s)!
            keep.append(p)
            return p
        }
        _ = ryze_curl_setopt_pointer(handle, CURLOPT_URL, cString(request.url))
        _ = ryze_curl_setopt_pointer(handle, CURLOPT_CUSTOMREQUEST, cString(request.method))
        _ = ryze_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        _ = ryze_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0)
        _ = ryze_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Int(request.timeout * 1000))
        _ = ryze_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(request.connectTimeout * 1000))
        _ = ryze_curl_setopt_pointer(handle, CURLOPT_PROTOCOLS_STR, cString("http,https"))
        // No proxy, whatever `http_proxy`/`https_proxy`/`all_proxy` say in the environment: a
        // proxy would resolve and connect to the target itself, around the address the
        // deliverer checked and pinned (SPEC §6.3's private-target rule). "" turns them off.
        _ = ryze_curl_setopt_pointer(handle, CURLOPT_PROXY, cString(""))
        if let socket = request.unixSocket { _ = ryze_curl_setopt_pointer(handle, CURLOPT_UNIX_SOCKET_PATH, cString(socket)) }
        var resolve: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(resolve) }
        if let address = request.pinnedAddress {
            guard let (host, port) = HTTPClient.hostAndPort(request.url) else { return .failure(.transport("cannot read the URL's host")) }
            let addresses = address.split(separator: ",").map { $0.contains(":") ? "[\($0)]" : String($0) }.joined(separator: ",")
            resolve = curl_slist_append(nil, "\(host):\(port):\(addresses)")
            _ = ryze_curl_setopt_pointer(handle, CURLOPT_RESOLVE, resolve)
        }
        return run(request, sink: sink, headerList: &headerList)
    }

    private func run(_ request: Request, sink: Sink, headerList: inout UnsafeMutablePointer<curl_slist>?) -> Result<Response, Failure> {
        // libcurl adds `Expect: 100-continue` to large bodies, which costs a round trip.
        for (name, value) in request.headers + [("Expect", "")] {
            headerList = curl_slist_append(headerList, value.isEmpty ? "\(name):" : "\(name): \(value)")
        }
        _ = ryze_curl_setopt_pointer(handle, CURLOPT_HTTPHEADER, headerList)
        if !request.body.isEmpty || request.method == "POST" {
            _ = ryze_curl_setopt_long(handle, CURLOPT_POSTFIELDSIZE_LARGE, request.body.count)
        }
        let box = Unmanaged.passRetained(sink)
        defer { box.release() }
        _ = ryze_curl_setopt_write_function(handle) { data, size, count, user in
            let sink = Unmanaged<Sink>.fromOpaque(user!).takeUnretainedValue()
            let n = size * count
            let room = max(0, sink.limit - sink.body.count)
            if room > 0, let data { sink.body.append(contentsOf: UnsafeRawBufferPointer(start: data, count: min(n, room))) }
            return n
        }
        _ = ryze_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, box.toOpaque())
        _ = ryze_curl_setopt_header_function(handle) { data, size, count, user in
            let sink = Unmanaged<Sink>.fromOpaque(user!).takeUnretainedValue()
            let n = size * count
            guard let data else { return n }
            let line = String(decoding: UnsafeRawBufferPointer(start: data, count: n), as: UTF8.self)
            if line.hasPrefix("HTTP/") { sink.headers.removeAll() }   // a new response (after 100 Continue)
            if let colon = line.firstIndex(of: ":") {
                let name = line[..<colon].lowercased()
                let value = line[line.index(after: colon)...].trimmingCharacters(in: " \t\r\n")
                sink.headers.append((name, value))
            }
            return n
        }
        _ = ryze_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, box.toOpaque())
        let code = request.body.withUnsafeBytes { body -> CURLcode in
            if !request.body.isEmpty { _ = ryze_curl_setopt_pointer(handle, CURLOPT_POSTFIELDS, body.baseAddress) }
            return curl_easy_perform(handle)
        }
        guard code == CURLE_OK else {
            if code == CURLE_OPERATION_TIMEDOUT { return .failure(.timeout) }
            return .failure(.transport(String(cString: curl_easy_strerror(code))))
        }
        var status = 0
        _ = ryze_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return .success(Response(status: status, headers: sink.headers, body: sink.body))
    }

    /// The host (without brackets) and port of an http or https URL, for CURLOPT_RESOLVE.
    static func hostAndPort(_ url: String) -> (String, Int)? {
        let parts = url.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count >= 3, parts[0].hasSuffix(":"), parts[1].isEmpty else { return nil }
        let scheme = parts[0].dropLast().lowercased()
        let rest = parts[2]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        var host = Substring(authority)
        var port = scheme == "https" ? 443 : 80
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":"), let p = Int(after.dropFirst()) { port = p }
            host = host[host.index(after: host.startIndex)..<close]
        } else if let colon = host.lastIndex(of: ":") {
            guard let p = Int(host[host.index(after: colon)...]) else { return nil }
            port = p
            host = host[..<colon]
        }
        return (String(host), port)
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
