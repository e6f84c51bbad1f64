import Glibc
import Logging
import RyzeCore
import RyzePostgres

/// Which store `--store` selects: the data directory's log (one host), or PostgreSQL (SPEC §7).
extension DataDirectory {
    /// The state store for a subcommand that works in both modes. `follow`: a long-running
    /// process that keeps its copy current by itself (workers, the deliverer); one-shot tools
    /// catch up when they read.
    func openStateStore(follow: Bool, compactFactor: Int? = nil, logger: Logger = Logger(label: "ryze.store")) throws -> any StateStore {
        if let url = store {
            // The host's change counter lives in its data directory, which serve and deliver
            // need anyway (their queue is there); a tool run where there is none counts nothing.
            if follow { try DataFiles(directory: path).makeDirectory() }
            let counter = access(path, F_OK) == 0 ? PostgresStore.hostChangesPath(dataDirectory: path) : nil
            return try PostgresStore(url: url, options: .init(follow: follow, hostChangesPath: counter), logger: logger)
        }
        return try LogStore(directory: path, autoCompactionFactor: compactFactor, logger: logger)
    }

    /// The delivery queue the workers write: the data directory's, or PostgreSQL's (`--store`).
    func openEventQueue(logger: Logger = Logger(label: "ryze.queue")) throws -> any EventQueue {
        if let url = store { return try PostgresQueue(url: url, logger: logger) }
        return try QueueStore(directory: path, logger: logger)
    }

    /// The dead letters `webhook dead ...` works on, in the same store as the queue.
    func openDeadLetters() throws -> any DeadLetterQueue {
        if let url = store { return try PostgresQueue(url: url) }
        return try QueueStore(directory: path)
    }

    /// For subcommands that work only on the data directory's own files (the log tools): with `--store` they refuse at once rather than act on files that are not
    /// the deployment's state.
    func refuseSharedStore(_ command: String) {
        if store != nil {
            fail("`\(command)` works on the data directory only; it does not support --store postgresql:// yet (see the README's multi-host section)")
        }
    }
}
