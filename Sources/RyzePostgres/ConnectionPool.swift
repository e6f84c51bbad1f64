import RyzeCore

/// Idle connections for writes and catch-up, handed to one thread at a time (libpq's rule).
/// Writes are rare and serialize on PostgreSQL's advisory lock anyway, so a few idle
/// connections serve any number of request threads; a thread that finds none connects.
final class ConnectionPool: @unchecked Sendable {
    let url: String
    private let maxIdle: Int
    private let mutex = PlainMutex()
    /// Guarded by `mutex`.
    private var idle: [PGConnection] = []

    init(url: String, maxIdle: Int) {
        self.url = url
        self.maxIdle = maxIdle
    }

    /// An idle connection (`reused` true: it may have died since it was last used) or a new one.
    func take(deadline: Deadline) throws(StoreError) -> (PGConnection, reused: Bool) {
        if let c = mutex.withLock({ idle.popLast() }) { return (c, true) }
        return (try PGConnection.connect(url: url, deadline: deadline), false)
    }

    /// Takes back a connection that is outside any transaction; a broken one is closed.
    func give(_ c: PGConnection) {
        guard !c.broken else { return }
        let kept = mutex.withLock { () -> Bool in
            guard idle.count < maxIdle else { return false }
            idle.append(c)
            return true
        }
        _ = kept   // not kept: released here, which closes it
    }

    /// Closes every idle connection: after PostgreSQL was lost, they are all suspect.
    func flush() {
        let old = mutex.withLock { () -> [PGConnection] in
            defer { idle = [] }
            return idle
        }
        _ = old
    }
}
