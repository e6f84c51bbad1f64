import Logging

/// The one-host `StateStore`: the log of accounts, instances and configurations (`events.log`),
/// an `AppendLog<State>`. A concrete class of its own rather than that generic class's
/// conformance: through a generic class the state reached `read`'s caller as a copy.
public final class LogStore: StateStore, @unchecked Sendable {
    public let log: AppendLog<State>

    public static var logName: String { AppendLog<State>.logName }
    public static var autoCompactionMinimum: Int { AppendLog<State>.autoCompactionMinimum }

    /// Opens (creating if needed) the store in `directory` and replays its log, cutting a torn
    /// tail; damage in the middle of the log is an error.
    public init(directory: String, autoCompactionFactor: Int? = nil, logger: Logger = Logger(label: "ryze.store")) throws(StoreError) {
        log = try AppendLog(directory: directory, autoCompactionFactor: autoCompactionFactor, logger: logger)
    }

    public var files: DataFiles { log.files }
    public var logPath: String { log.logPath }

    public func refresh() throws(StoreError) { try log.refresh() }

    public func read<T, E: Error>(_ body: (State) throws(E) -> T) throws(E) -> T {
        try log.withState(body)
    }

    public func principal(for token: TokenDigest) -> State.Principal? {
        var found: State.Principal?
        log.withStatePointer { found = State.principal(in: $0, for: token) }
        return found
    }

    public func instance(_ key: State.InstanceKey) -> State.Instance? {
        var found: State.Instance?
        log.withStatePointer { found = $0.pointee.instances[key] }
        return found
    }

    public func write<T, E: Error>(_ decide: (State) throws(E) -> (LogRecord?, T)) throws -> T {
        try log.write(decide)
    }

    public var stats: StoreStats {
        let h = log.health
        return read { state in
            StoreStats(records: h.records, bytes: h.bytes, accounts: state.accounts.count, instances: state.instances.count, writable: h.writable)
        }
    }

    /// See `AppendLog.compact`.
    public func compact() throws(StoreError) -> AppendLog<State>.CompactionResult { try log.compact() }
}
