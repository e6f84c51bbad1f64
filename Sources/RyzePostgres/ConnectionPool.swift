import RyzeCore

/// Idle connections for writes and catch-up, handed to one thread at a time (libpq's rule).
/// Writes are rare and serialize on PostgreSQL's advisory lock anyway, so a few idle
/// connections serve any number of request threads; a thread that finds none connects.
final class ConnectionPool: Sendable {
    let url: String
    private let idle: IdlePool<PGConnection>

    init(url: String, maxIdle: Int) {
        self.url = url
        idle = IdlePool(maxIdle: maxIdle)
    }

    /// An idle connection (`reused` true: it may have died since it was last used) or a new one.
    func take(deadline: Deadline) throws(StoreError) -> (PGConnection, reused: Bool) {
        if let c = idle.take() { return (c, true) }
        return (try PGConnection.connect(url: url, deadline: deadline), false)
    }

    /// Takes back a connection that is outside any transaction; a broken one, or one beyond
    /// the idle bound, is released here, which closes it.
    func give(_ c: PGConnection) {
        guard !c.broken else { return }
        idle.give(c)
    }

    /// Closes every idle connection: after PostgreSQL was lost, they are all suspect.
    func flush() { _ = idle.drain() }
}
