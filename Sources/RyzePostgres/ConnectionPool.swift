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

    /// Runs `body` on a pooled connection; when a reused one turns out dead (the server
    /// restarted since it was last used), once more on a fresh connection.
    func with<T>(deadline: Deadline, _ body: (PGConnection) throws(StoreError) -> T) throws(StoreError) -> T {
        let (c, reused) = try take(deadline: deadline)
        do {
            let value = try body(c)
            give(c)
            return value
        } catch {
            give(c)
            guard error.isUnavailable && reused else { throw error }
        }
        let fresh = try PGConnection.connect(url: url, deadline: deadline)
        let value = try body(fresh)
        give(fresh)
        return value
    }

    /// `body` inside one transaction on a pooled connection (rolled back when it throws). A
    /// reused connection found dead at `BEGIN` is replaced by a fresh one once.
    func transaction<T>(deadline: Deadline, _ body: (PGConnection) throws -> T) throws -> T {
        var (c, reused) = try take(deadline: deadline)
        do {
            try c.execute("BEGIN", deadline: deadline)
        } catch {
            guard error.isUnavailable && reused else { throw error }
            c = try PGConnection.connect(url: url, deadline: deadline)
            try c.execute("BEGIN", deadline: deadline)
        }
        do {
            let value = try body(c)
            try c.execute("COMMIT", deadline: deadline)
            give(c)
            return value
        } catch {
            if !c.broken { _ = try? c.execute("ROLLBACK", deadline: .after(milliseconds: 500)) }
            give(c)
            throw error
        }
    }

    /// Closes every idle connection: after PostgreSQL was lost, they are all suspect.
    func flush() { _ = idle.drain() }
}
