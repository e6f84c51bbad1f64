/// The PostgreSQL schema, as numbered migrations the binary applies itself (`Migrator`).
///
/// Relational tables hold the current state, readable with plain SQL, with primary keys and
/// unique constraints on names and token digests as a second line of defense behind the checks
/// every write runs (`decide`). `ryze_changes` holds each write's `LogRecord` (the log's own
/// encoding, `log_format.md`) under a sequence number taken in the write's transaction, so that
/// every worker of every host can follow the changes instead of reloading the state.
///
/// Never edit a migration that has shipped: add one.
enum Schema {
    struct Migration {
        let version: Int
        let name: String
        let sql: String
    }

    /// Advisory-lock keys (`pg_advisory_lock`): ASCII "ryze" then a small number.
    static let migrationLock: Int64 = 0x7279_7A65_0000_0001
    static let writeLock: Int64 = 0x7279_7A65_0000_0002

    /// The channel `NOTIFY` wakes followers on; only a hint (see `PostgresStore`).
    static let channel = "ryze_changes"

    static let migrations: [Migration] = [
        Migration(version: 1, name: "state tables and change sequence", sql: """
            CREATE TABLE ryze_accounts (
                name text PRIMARY KEY,
                token_digest bytea NOT NULL UNIQUE CHECK (length(token_digest) = 32),
                instance_quota bigint NOT NULL CHECK (instance_quota BETWEEN 0 AND 4294967295),
                disabled boolean NOT NULL DEFAULT false,
                created_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE TABLE ryze_publishers (
                name text PRIMARY KEY,
                token_digest bytea NOT NULL UNIQUE CHECK (length(token_digest) = 32),
                disabled boolean NOT NULL DEFAULT false,
                created_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE TABLE ryze_instances (
                account text NOT NULL REFERENCES ryze_accounts (name),
                name text NOT NULL,
                token_digest bytea NOT NULL UNIQUE CHECK (length(token_digest) = 32),
                -- The WebSocket configuration; ws_saved false: never saved.
                ws_saved boolean NOT NULL DEFAULT false,
                ws_enabled boolean NOT NULL DEFAULT false,
                ws_events text NOT NULL DEFAULT '',
                ws_media_base64 boolean NOT NULL DEFAULT false,
                created_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (account, name)
            );
            CREATE TABLE ryze_webhooks (
                account text NOT NULL,
                instance text NOT NULL,
                label text NOT NULL,
                enabled boolean NOT NULL,
                url text NOT NULL,
                by_events boolean NOT NULL,
                events text NOT NULL,
                media_base64 boolean NOT NULL,
                -- Sealed under the deployment key named by key_id (8 bytes); never plain text.
                key_id bytea NOT NULL CHECK (length(key_id) = 8),
                sealed_authorization bytea NOT NULL,
                sealed_signing_secret bytea NOT NULL,
                PRIMARY KEY (account, instance, label),
                FOREIGN KEY (account, instance) REFERENCES ryze_instances (account, name) ON DELETE CASCADE
            );
            -- One row: the number of the last change. Every write bumps it in its transaction.
            CREATE TABLE ryze_change_seq (
                id smallint PRIMARY KEY CHECK (id = 1),
                seq bigint NOT NULL
            );
            INSERT INTO ryze_change_seq VALUES (1, 0);
            CREATE TABLE ryze_changes (
                seq bigint PRIMARY KEY,
                record bytea NOT NULL,
                written_at timestamptz NOT NULL DEFAULT now()
            );
            """),
        // Log record 11 (`streamClosed`): the instance's stream epoch, which names its fan-out
        // channel after its WebSocket configuration was disabled (0: never closed).
        Migration(version: 2, name: "instance stream epoch", sql: """
            ALTER TABLE ryze_instances ADD COLUMN stream_epoch int8 NOT NULL DEFAULT 0;
            """),
        // The delivery queue and the dead letters (SPEC §7), shared by every host's workers and
        // deliverers (`PostgresQueue`, `PostgresDeliverySource`). One row per delivery (an event
        // to one label), its envelope with it. Times are the database's (now()), so that hosts
        // whose clocks differ agree on what is due and when a lease ran out. A delivery is
        // pending (not dead), leased while a deliverer holds it (lease_holder and lease_until,
        // the lease running out by itself when that deliverer dies), or dead.
        Migration(version: 3, name: "delivery queue and dead letters", sql: """
            CREATE TABLE ryze_deliveries (
                id bigserial PRIMARY KEY,
                event_id text NOT NULL,
                account text NOT NULL,
                instance text NOT NULL,
                label text NOT NULL,
                event smallint NOT NULL,
                envelope bytea NOT NULL,
                attempts integer NOT NULL DEFAULT 0,
                due timestamptz NOT NULL DEFAULT now(),
                lease_holder text,
                lease_until timestamptz,
                last_error text NOT NULL DEFAULT '',
                dead boolean NOT NULL DEFAULT false,
                dead_at timestamptz,
                queued_at timestamptz NOT NULL DEFAULT now()
            );
            -- The claim walks pending deliveries by due time; the dead letters are listed and
            -- purged by age.
            CREATE INDEX ryze_deliveries_due ON ryze_deliveries (due) WHERE NOT dead;
            CREATE INDEX ryze_deliveries_lease ON ryze_deliveries (lease_holder) WHERE lease_holder IS NOT NULL;
            CREATE INDEX ryze_deliveries_dead ON ryze_deliveries (dead_at) WHERE dead;
            -- Deliveries that left the queue (delivered, dropped), counted per host so that
            -- deliverers never wait on one another's row; the status page sums them.
            CREATE TABLE ryze_delivery_stats (
                host text PRIMARY KEY,
                delivered int8 NOT NULL DEFAULT 0,
                dropped int8 NOT NULL DEFAULT 0
            );
            """),
        // While a deliverer holds some label at its bound, its claim
        // (`PostgresDeliverySource.claimPerLabel`) goes label by label: it lists the labels with
        // pending rows by a loose scan of this index and takes each one's oldest due rows from
        // it, so that label's backlog, however long, is never walked. The predicate is spelt
        // `dead IS NOT TRUE` (the same rows: dead is never null) so that it does not imply
        // ryze_deliveries_due's, and the planner cannot take that index for one label's rows.
        // Built in the migration's transaction: publishes wait for it (about 1 s per 200,000
        // pending rows here).
        Migration(version: 4, name: "delivery queue per-label index", sql: """
            CREATE INDEX ryze_deliveries_label ON ryze_deliveries (account, instance, label, due) WHERE dead IS NOT TRUE;
            """),
        // Which life of a label a webhook row is, and which one each delivery was queued for
        // (`StoredWebhook.generation`): a delivery is sent only to the life it was queued for,
        // never to a label saved again after a delete or a disable, or on a re-created
        // instance. 0: from before this migration (the rows of both tables, so they still match).
        Migration(version: 5, name: "webhook label generations", sql: """
            ALTER TABLE ryze_webhooks ADD COLUMN generation int8 NOT NULL DEFAULT 0;
            ALTER TABLE ryze_deliveries ADD COLUMN generation int8 NOT NULL DEFAULT 0;
            """),
    ]

    static var latestVersion: Int { migrations.map(\.version).max() ?? 0 }

    /// Changes kept behind the newest: a follower further behind reloads the whole state.
    static let changesKept: Int64 = 10_000
}
