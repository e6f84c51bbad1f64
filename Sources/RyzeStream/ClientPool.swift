import RyzeHTTP
import Synchronization

/// HTTP clients for concurrent callers: `HTTPClient` is not thread-safe, so each call takes one
/// for itself and gives it back. Request threads are few and long-lived, so the pool settles at
/// one client per thread that ever published, each keeping its connection to nginx alive.
final class ClientPool: Sendable {
    /// An idle client, owned by the pool. Only the call that took it out uses it until it is put
    /// back: that hand-over through the mutex is what makes moving it between threads safe.
    private final class Idle: @unchecked Sendable {
        let client: HTTPClient
        init(_ client: HTTPClient) { self.client = client }
    }

    private let idle = Mutex<[Idle]>([])
    private let make: @Sendable () -> HTTPClient

    init(make: @escaping @Sendable () -> HTTPClient = { HTTPClient(maxResponseBody: 4096) }) {
        self.make = make
    }

    func with<T>(_ body: (HTTPClient) -> T) -> T {
        let taken = idle.withLock { $0.popLast() } ?? Idle(make())
        defer { idle.withLock { $0.append(taken) } }
        return body(taken.client)
    }

    /// Idle clients now (tests).
    var idleCount: Int { idle.withLock { $0.count } }
}
