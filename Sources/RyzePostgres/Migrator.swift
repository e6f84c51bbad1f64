import Logging
import RyzeCore

/// Brings the database's schema up to `Schema.latestVersion`. Every process that opens the
/// store runs it; concurrent starters (several hosts restarted at once) serialize on a session
/// advisory lock, and each migration commits in one transaction with its row in
/// `ryze_schema_migrations`, so a crash leaves the schema at some whole version.
enum Migrator {
    /// Returns the versions it applied (empty when the schema was current). `upTo` stops at an
    /// older version: tests use it to make a database as an older binary left it.
    @discardableResult
    static func migrate(_ c: PGConnection, logger: Logger, upTo: Int = Schema.latestVersion) throws(StoreError) -> [Int] {
        let deadline = Deadline.after(milliseconds: 60_000)
        // This session may wait for another starter's migrations: longer limits than a worker's.
        try c.run(script: "SET statement_timeout = 60000; SET lock_timeout = 60000", deadline: deadline)
        try c.execute("SELECT pg_advisory_lock($1::bigint)", [.int(Schema.migrationLock)], deadline: deadline)
        defer { _ = try? c.execute("SELECT pg_advisory_unlock($1::bigint)", [.int(Schema.migrationLock)], deadline: deadline) }
        try c.execute("""
            CREATE TABLE IF NOT EXISTS ryze_schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """, deadline: deadline)
        let rows = try c.execute("SELECT version::int8 FROM ryze_schema_migrations", deadline: deadline)
        var applied = Set<Int>()
        for r in 0..<rows.rows { applied.insert(Int(rows.int(r, 0))) }
        if let newest = applied.max(), newest > Schema.latestVersion {
            throw .unusable("the database's schema is at version \(newest), newer than this binary's \(Schema.latestVersion): upgrade ryze-events")
        }
        var done: [Int] = []
        for m in Schema.migrations where m.version <= upTo && !applied.contains(m.version) {
            do {
                try c.execute("BEGIN", deadline: deadline)
                try c.run(script: m.sql, deadline: deadline)
                try c.execute("INSERT INTO ryze_schema_migrations (version, name) VALUES ($1::int4, $2)",
                              [.int(Int64(m.version)), .text(m.name)], deadline: deadline)
                try c.execute("COMMIT", deadline: deadline)
            } catch {
                _ = try? c.execute("ROLLBACK", deadline: deadline)
                throw error
            }
            logger.notice("applied schema migration", metadata: ["version": "\(m.version)", "name": "\(m.name)"])
            done.append(m.version)
        }
        try c.run(script: "RESET statement_timeout; RESET lock_timeout", deadline: deadline)
        return done
    }
}
