/// Where the deployment's state lives, as the API sees it. The append-only log in the data
/// directory (`LogStore`) is one implementation; the API's handlers know nothing else of it, so
/// another one (PostgreSQL, for deployments of several hosts) can take its place.
///
/// Every change is a `LogRecord`: the domain's vocabulary of changes, whatever stores them.
public protocol StateStore: AnyObject, Sendable {
    /// Brings this process up to date with what any process of the deployment wrote. Cheap when
    /// nothing changed; a request must not be answered from a state that failed to catch up.
    func refresh() throws(StoreError)

    /// Brings this process up to every write committed so far, now: for a decision that cannot
    /// be taken back on a state that may lag (a store followed from other hosts serves a copy up
    /// to a second old). Where `refresh` already reads synchronously, it is `refresh`.
    func synchronize() throws(StoreError)

    /// Runs `body` against the current state. `body` must not call back into the store.
    func read<T, E: Error>(_ body: (State) throws(E) -> T) throws(E) -> T

    /// The request path's two lookups. Not generic on purpose: called through `any StateStore`,
    /// a generic `read` runs unspecialized and hands its closure a copy of the whole state (a
    /// retain and a release of each of its dictionaries), where these read it in place.
    func principal(for token: TokenDigest) -> State.Principal?
    func instance(_ key: State.InstanceKey) -> State.Instance?

    /// Decides a change against the deployment-wide current state and makes it durable.
    ///
    /// `decide` runs under the deployment's write lock, possibly on another thread of this
    /// process (group commit), against a state that already holds the changes decided before it.
    /// It returns the record to append (nil: nothing to change) and a value handed back to the
    /// caller once the record is durable; or it throws to refuse, and then nothing is written
    /// and `write` rethrows that error unchanged. Because it runs with the store's locks held,
    /// `decide` may not call back into any store (that deadlocks), block, or take a long time:
    /// every writer of the deployment waits for it. Failures of the store itself are thrown as
    /// `StoreError`.
    func write<T, E: Error>(_ decide: (State) throws(E) -> (LogRecord?, T)) throws -> T

    /// Size and health, for the status page.
    var stats: StoreStats { get }
}

extension StateStore {
    public func synchronize() throws(StoreError) { try refresh() }
}

public struct StoreStats: Sendable {
    /// Records since the store began (or was last compacted).
    public var records: Int
    /// Bytes of storage this process has applied.
    public var bytes: Int
    public var accounts: Int
    public var instances: Int
    /// False once a write could not be made durable and further writes are refused.
    public var writable: Bool

    public init(records: Int, bytes: Int, accounts: Int, instances: Int, writable: Bool) {
        self.records = records
        self.bytes = bytes
        self.accounts = accounts
        self.instances = instances
        self.writable = writable
    }
}
