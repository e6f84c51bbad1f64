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

    /// An idle connection (`reused` true: it may have died since it was last used, though it
    /// did not look dead) or a new one. Idle connections whose socket shows the server gone (a
    /// restart) are dropped here, before anything is sent on them.
    func take(deadline: Deadline) throws(StoreError) -> (PGConnection, reused: Bool) {
        while let c = idle.take() {
            if c.looksAlive() { return (c, true) }
        }
        return (try PGConnection.connect(url: url, deadline: deadline), false)
    }

    /// Takes back a connection that is outside any transaction; a broken one, or one beyond
    /// the idle bound, is released here, which closes it.
    func give(_ c: PGConnection) {
        guard !c.broken else { return }
        idle.give(c)
    }

    /// Runs `body` once on a pooled connection. Never again on another connection after a
    /// failure: a statement whose answer was lost may have been applied (an INSERT of a
    /// published event would be queued twice, a claim would lease rows nobody works on), so
    /// the failure goes to the caller. Connections killed by a server restart are weeded out
    /// before use (`take`).
    func with<T>(deadline: Deadline, _ body: (PGConnection) throws(StoreError) -> T) throws(StoreError) -> T {
        let (c, _) = try take(deadline: deadline)
        defer { give(c) }
        return try body(c)
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
