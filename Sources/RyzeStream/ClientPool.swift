import RyzeHTTP
import RyzeCore

/// HTTP clients for concurrent callers: `HTTPClient` is not thread-safe, so each call takes one
/// for itself and gives it back (`IdlePool`'s hand-over). The pool settles at one client per
/// thread that ever published, each keeping its connection to nginx alive.
final class ClientPool: Sendable {
    private let idle = IdlePool<HTTPClient>()
    private let make: @Sendable () -> HTTPClient

    init(make: @escaping @Sendable () -> HTTPClient = { HTTPClient(maxResponseBody: 4096) }) {
        self.make = make
    }

    func with<T>(_ body: (HTTPClient) -> T) -> T {
        let taken = idle.take() ?? make()
        defer { idle.give(taken) }
        return body(taken)
    }

    /// Idle clients now (tests).
    var idleCount: Int { idle.count }
}
