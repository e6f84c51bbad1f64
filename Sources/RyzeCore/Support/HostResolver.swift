#if canImport(Glibc)
import Glibc
#endif

/// Host names to addresses with a deadline, for the PostgreSQL and Redis connections (SPEC §7: with
/// either unreachable, a request is answered within 2 seconds, never left hanging).
///
/// getaddrinfo(3) takes no timeout: with a resolver that does not answer it blocks for
/// resolv.conf's timeout x attempts x servers (10 s and more by default), and libpq and hiredis
/// call it inside their connect. So connections are made to addresses resolved here: the lookup
/// runs on a background thread of its own and the caller waits for it only until its deadline. A
/// lookup that overruns finishes in the background and its answer is kept for the next caller.
///
/// Invariants (all under `lock`): at most one lookup per name is in flight, and callers that come
/// while it runs wait for that one, so a silent resolver costs one thread per name, not one per
/// connection attempt; `lastGood[name]` is the latest successful answer. A lookup that fails or
/// overruns falls back on `lastGood`, so that a resolver outage does not take down a store whose
/// address has not changed; a name never resolved fails. With an answer to fall back on, a caller
/// waits for the fresh one at most `staleAfter`, so that an outage costs each reconnect that much,
/// not its whole deadline.
public final class HostResolver: @unchecked Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// The blocking lookup: numeric addresses (inet_ntop text) or why not.
    public typealias Lookup = @Sendable (String) -> Result<[String], Failure>

    public static let shared = HostResolver()

    /// A lookup in flight; `result` is guarded by the resolver's lock.
    private final class Pending: @unchecked Sendable {
        var result: Result<[String], Failure>?
    }

    private let lock = ConditionLock()
    private var inFlight: [String: Pending] = [:]
    private var lastGood: [String: [String]] = [:]
    private let lookup: Lookup

    private let staleAfterNanoseconds: UInt64

    public init(lookup: @escaping Lookup = HostResolver.getaddrinfo, staleAfter seconds: Double = 0.25) {
        self.lookup = lookup
        staleAfterNanoseconds = UInt64(seconds * 1e9)
    }

    /// The addresses of `host`, in getaddrinfo's order, by `deadline` (MonotonicClock
    /// nanoseconds). A numeric address is its own answer, at once.
    public func addresses(of host: String, deadline: UInt64) throws(Failure) -> [String] {
        if HostResolver.isNumeric(host) { return [host] }
        lock.lock()
        defer { lock.unlock() }
        let pending: Pending
        if let running = inFlight[host] {
            pending = running
        } else {
            pending = Pending()
            inFlight[host] = pending
            let lookup = self.lookup
            BackgroundThread.start { [self] in
                let result = lookup(host)
                lock.lock()
                pending.result = result
                if inFlight[host] === pending { inFlight[host] = nil }
                if case .success(let addresses) = result { lastGood[host] = addresses }
                lock.broadcast()
                lock.unlock()
            }
        }
        let waitUntil = lastGood[host] == nil ? deadline : min(deadline, MonotonicClock.nanoseconds() + staleAfterNanoseconds)
        while pending.result == nil {
            if !lock.wait(until: waitUntil) && pending.result == nil { break }
        }
        switch pending.result {
        case .success(let addresses)?:
            return addresses
        case .failure(let failure)?:
            if let known = lastGood[host] { return known }
            throw failure
        case nil:
            if let known = lastGood[host] { return known }
            throw Failure("resolving \(host) timed out")
        }
    }

    /// An IPv4 or IPv6 address in text, which needs no lookup.
    public static func isNumeric(_ host: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    /// getaddrinfo(3) for TCP, each address once, as text.
    public static let getaddrinfo: Lookup = { host in
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_ADDRCONFIG
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = Glibc.getaddrinfo(host, nil, &hints, &list)
        guard rc == 0 else { return .failure(Failure("cannot resolve \(host): \(String(cString: gai_strerror(rc)))")) }
        defer { freeaddrinfo(list) }
        var out: [String] = []
        var node = list
        while let n = node {
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
            let ok: Bool
            switch n.pointee.ai_family {
            case AF_INET:
                ok = n.pointee.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var a = sin.pointee.sin_addr
                    return inet_ntop(AF_INET, &a, &text, socklen_t(text.count)) != nil
                }
            case AF_INET6:
                ok = n.pointee.ai_addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                    var a = sin6.pointee.sin6_addr
                    return inet_ntop(AF_INET6, &a, &text, socklen_t(text.count)) != nil
                }
            default:
                ok = false
            }
            if ok {
                let s = String(decoding: text.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if !out.contains(s) { out.append(s) }
            }
            node = n.pointee.ai_next
        }
        return out.isEmpty ? .failure(Failure("cannot resolve \(host): no IPv4 or IPv6 address")) : .success(out)
    }
}
