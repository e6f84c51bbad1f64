/// Resources that only one thread at a time may use (a libpq or hiredis connection, a libcurl
/// client), kept idle between uses so that each use does not open its own.
///
/// Safety: a resource is used only by the caller that took it out, until it gives it back; the
/// hand-over through `mutex` is what makes moving a resource that is not `Sendable` between
/// threads safe. The pool never uses a resource itself. Request threads are few and long-lived,
/// so an unbounded pool settles at one resource per thread that ever needed one.
public final class IdlePool<Resource>: @unchecked Sendable {
    private let maxIdle: Int
    private let mutex = PlainMutex()
    /// Guarded by `mutex`.
    private var idle: [Resource] = []

    public init(maxIdle: Int = .max) {
        self.maxIdle = maxIdle
    }

    /// The resource given back last (its state the freshest), or nil when none is idle.
    public func take() -> Resource? { mutex.withLock { idle.popLast() } }

    /// Keeps `resource` for the next `take`; false when `maxIdle` are already idle, and then the
    /// caller's reference is the last one (releasing it closes it).
    @discardableResult
    public func give(_ resource: Resource) -> Bool {
        mutex.withLock {
            guard idle.count < maxIdle else { return false }
            idle.append(resource)
            return true
        }
    }

    /// Empties the pool and returns what was idle: after the server was lost, all of it is suspect.
    public func drain() -> [Resource] {
        mutex.withLock {
            defer { idle = [] }
            return idle
        }
    }

    /// Idle resources now (tests).
    public var count: Int { mutex.withLock { idle.count } }
}
