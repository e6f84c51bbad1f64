import CPostgres
import RyzeCore
#if canImport(Glibc)
import Glibc
#endif

/// One libpq connection. libpq is thread-safe only per connection: a `PGConnection` is used by
/// one thread at a time (its owner: the pool hands it out, the follower keeps its own).
///
/// Every call has a deadline and never waits past it: libpq's own `connect_timeout` cannot go
/// under 2 seconds and a blocking `PQexec` waits for ever on a silent network, so connecting
/// and querying both go through libpq's asynchronous calls and `poll(2)` on its socket. A
/// connection that missed a deadline or lost its server is `broken` and must be dropped.
final class PGConnection {
    private var conn: OpaquePointer?
    private(set) var broken = false

    /// Server-side limits set on every session, a second guard behind the client's deadlines:
    /// nothing a worker runs may hold locks or a transaction open for long.
    static let sessionOptions = "-c client_min_messages=warning -c statement_timeout=5000 -c lock_timeout=3000 -c idle_in_transaction_session_timeout=10000"

    private init(_ conn: OpaquePointer) { self.conn = conn }

    deinit { if let conn { PQfinish(conn) } }

    /// Connects to `url` (a libpq connection URI or key=value string) before `deadline`, with TCP
    /// keepalives so that a dead peer is noticed without a query in flight.
    static func connect(url: String, deadline: Deadline) throws(StoreError) -> PGConnection {
        // After dbname, so that they override what the URI says (libpq: later keywords win).
        let settings: [(String, String)] = [
            ("dbname", url),
            ("application_name", "ryze-events"),
            ("keepalives", "1"), ("keepalives_idle", "5"), ("keepalives_interval", "2"), ("keepalives_count", "2"),
            ("tcp_user_timeout", "3000"),
            ("options", sessionOptions),
        ] + (try resolvedHosts(url: url, deadline: deadline))
        let conn: OpaquePointer? = withCStrings(settings.map(\.0)) { keys in
            withCStrings(settings.map(\.1)) { values in PQconnectStartParams(keys, values, 1) }
        }
        guard let conn else { throw .unavailable("libpq could not allocate a connection") }
        let c = PGConnection(conn)
        guard PQstatus(conn) != CONNECTION_BAD else { throw .unavailable(c.errorMessage) }
        var state = PGRES_POLLING_WRITING
        while true {
            switch state {
            case PGRES_POLLING_OK:
                return c
            case PGRES_POLLING_FAILED:
                throw .unavailable(c.errorMessage)
            case PGRES_POLLING_READING:
                guard c.wait(events: Int16(POLLIN), deadline: deadline) else { throw .unavailable("connecting timed out") }
            default:
                guard c.wait(events: Int16(POLLOUT), deadline: deadline) else { throw .unavailable("connecting timed out") }
            }
            state = PQconnectPoll(conn)
        }
    }

    /// `host`, `hostaddr` and `port` for libpq with every host name of `url` already resolved, by
    /// `deadline` (HostResolver): libpq's PQconnectStartParams would otherwise call getaddrinfo,
    /// which blocks without a deadline. Each address of a name becomes a host entry of its own, so
    /// that libpq still tries them in turn; `host` keeps the name (for TLS and the password file).
    /// Empty when nothing needs resolving: socket directories, numeric addresses, a `hostaddr`
    /// the URI gives itself.
    static func resolvedHosts(url: String, deadline: Deadline) throws(StoreError) -> [(String, String)] {
        var error: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(url, &error) else {
            defer { if let error { PQfreemem(error) } }
            throw .unavailable(error.map { String(cString: $0).oneLine } ?? "cannot parse the connection URI")
        }
        defer { PQconninfoFree(options) }
        var given: [String: String] = [:]
        var k = 0
        while let keyword = options[k].keyword {
            if let value = options[k].val { given[String(cString: keyword)] = String(cString: value) }
            k += 1
        }
        // What the URI leaves out, libpq takes from the environment (PGHOST, PGHOSTADDR,
        // PGPORT): a name given there must be resolved here too, or libpq would block on it.
        func setting(_ key: String, _ variable: String) -> String {
            if let v = given[key], !v.isEmpty { return v }
            return getenv(variable).map { String(cString: $0) } ?? ""
        }
        let hostList = setting("host", "PGHOST")
        guard setting("hostaddr", "PGHOSTADDR").isEmpty, !hostList.isEmpty else { return [] }
        let hosts = hostList.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let portList = setting("port", "PGPORT")
        let ports = portList.isEmpty ? [] : portList.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        func isName(_ h: String) -> Bool { !h.isEmpty && !h.hasPrefix("/") && !h.hasPrefix("@") && !HostResolver.isNumeric(h) }
        guard hosts.contains(where: isName) else { return [] }
        var outHosts: [String] = [], outAddresses: [String] = [], outPorts: [String] = []
        // Several hosts (libpq tries them in turn): one whose name does not resolve is left
        // out, as libpq itself would skip it; only when none is left is it a failure.
        var lastFailure: String?
        for (i, host) in hosts.enumerated() {
            // libpq: one port for all hosts, or one per host.
            let port = ports.count == hosts.count ? ports[i] : (ports.first ?? "")
            // An empty hostaddr entry: libpq uses that host as it is (a socket directory).
            var addresses = [HostResolver.isNumeric(host) ? host : ""]
            if isName(host) {
                do {
                    addresses = try HostResolver.shared.addresses(of: host, deadline: deadline.nanoseconds)
                } catch {
                    lastFailure = error.description
                    continue
                }
            }
            for a in addresses {
                outHosts.append(host)
                outAddresses.append(a)
                outPorts.append(port)
            }
        }
        if outHosts.isEmpty { throw .unavailable(lastFailure ?? "no host to connect to") }
        var settings = [("host", outHosts.joined(separator: ",")), ("hostaddr", outAddresses.joined(separator: ","))]
        if !ports.isEmpty { settings.append(("port", outPorts.joined(separator: ","))) }
        return settings
    }

    var errorMessage: String {
        guard let conn, let m = PQerrorMessage(conn) else { return "no connection" }
        return String(cString: m).oneLine
    }

    /// Runs one statement and returns its result. Results come in binary format (see
    /// `PGResult`); parameters go as text, bytea as binary. A server error is `.io` unless it
    /// means the connection is gone (`.unavailable`).
    @discardableResult
    func execute(_ sql: String, _ params: [PGValue] = [], deadline: Deadline) throws(StoreError) -> PGResult {
        try send(sql, params, script: false, deadline: deadline)
    }

    /// Runs several statements separated by `;` (no parameters; results in text format).
    func run(script sql: String, deadline: Deadline) throws(StoreError) {
        try send(sql, [], script: true, deadline: deadline)
    }

    @discardableResult
    private func send(_ sql: String, _ params: [PGValue], script: Bool, deadline: Deadline) throws(StoreError) -> PGResult {
        guard let conn, !broken else { throw .unavailable("connection closed") }
        let sent: Int32
        if script {
            sent = PQsendQuery(conn, sql)
        } else {
            var buffers = params.map(\.wire)
            let lengths = buffers.map { Int32($0?.count ?? 0) }
            let formats = params.map { $0.isBinary ? Int32(1) : Int32(0) }
            sent = withPointers(&buffers) { pointers in
                PQsendQueryParams(conn, sql, Int32(params.count), nil, pointers, lengths, formats, 1)
            }
        }
        guard sent == 1 else { throw fail() }
        var last: PGResult?
        while true {
            while PQisBusy(conn) == 1 {
                guard wait(events: Int16(POLLIN), deadline: deadline) else {
                    broken = true
                    throw .unavailable("query timed out")
                }
                guard PQconsumeInput(conn) == 1 else { throw fail() }
            }
            guard let r = PQgetResult(conn) else { break }
            last = PGResult(r)
        }
        guard let last else { throw fail() }
        switch last.status {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return last
        default:
            let message = last.errorMessage
            if PQstatus(conn) == CONNECTION_BAD || last.sqlState.hasPrefix("08") || last.sqlState.hasPrefix("57P") {
                broken = true
                throw .unavailable(message)
            }
            throw .io("postgresql: \(message)")
        }
    }

    /// Reads what the server sent without a query in flight (notifications) and reports whether
    /// any `NOTIFY` arrived. Waits for input until `deadline` first.
    func awaitNotification(deadline: Deadline) throws(StoreError) -> Bool {
        guard let conn, !broken else { throw .unavailable("connection closed") }
        if drainNotifications() { return true }
        _ = wait(events: Int16(POLLIN), deadline: deadline)
        guard PQconsumeInput(conn) == 1 else { throw fail() }
        return drainNotifications()
    }

    private func drainNotifications() -> Bool {
        var any = false
        while let n = PQnotifies(conn) {
            any = true
            PQfreemem(n)
        }
        return any
    }

    /// For an idle connection (no query in flight): false when its socket already says the
    /// server is gone (end of file or a reset after a restart: readable, or hung up, with
    /// nothing asked), without sending anything. An idle session is sent nothing unasked but
    /// the server's farewell, so anything readable means it is over. A silent network is not
    /// seen here; the next statement's deadline catches it.
    func looksAlive() -> Bool {
        guard !broken, let conn, PQstatus(conn) == CONNECTION_OK else { return false }
        let fd = PQsocket(conn)
        guard fd >= 0 else { return false }
        // 0x2000: POLLRDHUP (Linux; Glibc hides the name without _GNU_SOURCE).
        var p = pollfd(fd: fd, events: Int16(POLLIN) | 0x2000, revents: 0)
        while true {
            let rc = poll(&p, 1, 0)
            if rc == 0 { return true }
            if rc > 0 { return false }
            if errno != EINTR { return false }
        }
    }

    private func fail() -> StoreError {
        broken = true
        return .unavailable(errorMessage)
    }

    /// Waits for the socket to be ready for `events`; false on timeout (or no socket).
    private func wait(events: Int16, deadline: Deadline) -> Bool {
        let fd = PQsocket(conn)
        guard fd >= 0 else { return false }
        while true {
            let ms = deadline.remainingMilliseconds
            guard ms > 0 else { return false }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let rc = poll(&p, 1, Int32(min(ms, Int(Int32.max))))
            if rc > 0 { return true }
            if rc == 0 { return false }
            if errno != EINTR { return false }
        }
    }
}

/// A parameter of `PGConnection.execute`.
enum PGValue {
    case text(String)
    case int(Int64)
    case bool(Bool)
    case bytes([UInt8])
    case null

    var isBinary: Bool {
        if case .bytes = self { return true }
        return false
    }

    /// A `bigint[]` parameter (`$n::int8[]`), as the array's text form.
    static func intArray(_ values: [Int64]) -> PGValue { .text("{" + values.map(String.init).joined(separator: ",") + "}") }

    /// A `text[]` parameter (`$n::text[]`): every element quoted, `\` and `"` escaped; NUL,
    /// which PostgreSQL's text never holds, left out.
    static func textArray(_ values: [String]) -> PGValue {
        let quoted = values.map { v -> String in
            var out = "\""
            for ch in v.unicodeScalars where ch != "\0" {
                if ch == "\\" || ch == "\"" { out.append("\\") }
                out.unicodeScalars.append(ch)
            }
            return out + "\""
        }
        return .text("{" + quoted.joined(separator: ",") + "}")
    }

    /// The bytes sent; text values NUL-terminated (libpq reads text parameters as C strings).
    var wire: [UInt8]? {
        switch self {
        case .text(let s): return Array(s.utf8) + [0]
        case .int(let v): return Array(String(v).utf8) + [0]
        case .bool(let b): return Array((b ? "t" : "f").utf8) + [0]
        case .bytes(let b): return b
        case .null: return nil
        }
    }
}

/// One result in binary format: `bigint` as 8 bytes big-endian, `boolean` as one byte, `text`
/// and `bytea` as their bytes. Queries cast what they select to those types.
final class PGResult {
    private let result: OpaquePointer

    init(_ result: OpaquePointer) { self.result = result }
    deinit { PQclear(result) }

    var status: ExecStatusType { PQresultStatus(result) }
    var rows: Int { Int(PQntuples(result)) }
    var errorMessage: String { String(cString: PQresultErrorMessage(result)).oneLine }
    var sqlState: String {
        guard let s = PQresultErrorField(result, Int32(UInt8(ascii: "C"))) else { return "" }
        return String(cString: s)
    }

    func isNull(_ row: Int, _ column: Int) -> Bool { PQgetisnull(result, Int32(row), Int32(column)) == 1 }

    func bytes(_ row: Int, _ column: Int) -> [UInt8] {
        let n = Int(PQgetlength(result, Int32(row), Int32(column)))
        guard n > 0, let p = PQgetvalue(result, Int32(row), Int32(column)) else { return [] }
        return p.withMemoryRebound(to: UInt8.self, capacity: n) { Array(UnsafeBufferPointer(start: $0, count: n)) }
    }

    func text(_ row: Int, _ column: Int) -> String { String(decoding: bytes(row, column), as: UTF8.self) }

    func int(_ row: Int, _ column: Int) -> Int64 {
        let b = bytes(row, column)
        guard b.count == 8 else { return 0 }
        return b.reduce(Int64(0)) { $0 << 8 | Int64($1) }
    }

    func bool(_ row: Int, _ column: Int) -> Bool { bytes(row, column).first == 1 }
}

/// A point in monotonic time that calls must finish by.
struct Deadline {
    let nanoseconds: UInt64

    static func after(milliseconds: Int) -> Deadline { Deadline(nanoseconds: now + UInt64(milliseconds) * 1_000_000) }

    static var now: UInt64 { MonotonicClock.nanoseconds() }

    static func sleep(milliseconds: Int) {
        var ts = timespec(tv_sec: milliseconds / 1000, tv_nsec: (milliseconds % 1000) * 1_000_000)
        var rest = timespec()
        while nanosleep(&ts, &rest) != 0 && errno == EINTR { ts = rest }
    }

    var remainingMilliseconds: Int {
        let n = Deadline.now
        return n >= nanoseconds ? 0 : Int((nanoseconds - n + 999_999) / 1_000_000)
    }
}

private func withCStrings<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    var storage = strings.map { strdup($0) }
    defer { storage.forEach { free($0) } }
    storage.append(nil)
    return body(storage.map { $0.map { UnsafePointer($0) } })
}

private func withPointers<R>(_ buffers: inout [[UInt8]?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    // Copies into malloc'd memory: the pointers must stay valid for the whole call.
    let copies: [UnsafeMutablePointer<CChar>?] = buffers.map { b in
        guard let b else { return nil }
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: max(b.count, 1))
        b.withUnsafeBytes { raw in
            if let base = raw.baseAddress { UnsafeMutableRawPointer(p).copyMemory(from: base, byteCount: b.count) }
        }
        return p
    }
    defer { copies.forEach { $0?.deallocate() } }
    return body(copies.map { $0.map { UnsafePointer($0) } })
}

extension String {
    /// libpq's messages span lines (a hint on a tab-indented second line): one line for logs
    /// and for the command line's one-line reasons.
    var oneLine: String {
        split(whereSeparator: { $0 == "\n" || $0 == "\r" })
            .map { $0.trimmingPrefix(while: { $0 == "\t" || $0 == " " }) }
            .filter { !$0.isEmpty }
            .joined(separator: " ")
    }
}
