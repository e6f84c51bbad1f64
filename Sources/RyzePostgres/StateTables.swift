import RyzeCore

/// The relational tables of `Schema` as `State`: each `LogRecord` as the statements that make it
/// true in the tables, and the tables read back as records that rebuild the state.
enum StateTables {
    /// Writes `record` into the tables, inside the caller's transaction.
    static func write(_ record: LogRecord, _ c: PGConnection, deadline: Deadline) throws(StoreError) {
        switch record {
        case let .accountCreated(name, token, quota):
            try c.execute("INSERT INTO ryze_accounts (name, token_digest, instance_quota) VALUES ($1, $2, $3::int8)",
                          [.text(name), .bytes(token.bytes), .int(Int64(quota))], deadline: deadline)
        case let .accountDisabled(name):
            try c.execute("UPDATE ryze_accounts SET disabled = true WHERE name = $1", [.text(name)], deadline: deadline)
        case let .instanceCreated(account, name, token, websocket):
            let ws = websocket ?? WebSocketConfig(enabled: false)
            try c.execute("""
                INSERT INTO ryze_instances (account, name, token_digest, ws_saved, ws_enabled, ws_events, ws_media_base64)
                VALUES ($1, $2, $3, $4::bool, $5::bool, $6, $7::bool)
                """, [.text(account), .text(name), .bytes(token.bytes), .bool(websocket != nil), .bool(ws.enabled),
                      .text(eventText(ws.events)), .bool(ws.mediaBase64)], deadline: deadline)
        case let .instanceDeleted(account, name):
            try c.execute("DELETE FROM ryze_instances WHERE account = $1 AND name = $2", [.text(account), .text(name)], deadline: deadline)
        case let .websocketSaved(account, name, ws):
            try c.execute("""
                UPDATE ryze_instances SET ws_saved = true, ws_enabled = $3::bool, ws_events = $4, ws_media_base64 = $5::bool
                WHERE account = $1 AND name = $2
                """, [.text(account), .text(name), .bool(ws.enabled), .text(eventText(ws.events)), .bool(ws.mediaBase64)],
                deadline: deadline)
        case let .webhookSaved(account, name, h):
            let c0 = h.config
            try c.execute("""
                INSERT INTO ryze_webhooks (account, instance, label, enabled, url, by_events, events, media_base64,
                                           key_id, sealed_authorization, sealed_signing_secret, generation)
                VALUES ($1, $2, $3, $4::bool, $5, $6::bool, $7, $8::bool, $9, $10, $11, $12::int8)
                ON CONFLICT (account, instance, label) DO UPDATE SET
                    enabled = EXCLUDED.enabled, url = EXCLUDED.url, by_events = EXCLUDED.by_events,
                    events = EXCLUDED.events, media_base64 = EXCLUDED.media_base64, key_id = EXCLUDED.key_id,
                    sealed_authorization = EXCLUDED.sealed_authorization, sealed_signing_secret = EXCLUDED.sealed_signing_secret,
                    generation = EXCLUDED.generation
                """, [.text(account), .text(name), .text(c0.label.name), .bool(c0.enabled), .text(c0.url), .bool(c0.byEvents),
                      .text(eventText(c0.events)), .bool(c0.mediaBase64), .bytes(h.keyID.bytes),
                      .bytes(h.sealedAuthorization), .bytes(h.sealedSigningSecret), .int(Int64(bitPattern: h.generation))],
                deadline: deadline)
        case let .webhookDeleted(account, name, label):
            try c.execute("DELETE FROM ryze_webhooks WHERE account = $1 AND instance = $2 AND label = $3",
                          [.text(account), .text(name), .text(label.name)], deadline: deadline)
        case .batch(let records):
            for r in records { try write(r, c, deadline: deadline) }
        case let .publisherCreated(name, token):
            try c.execute("INSERT INTO ryze_publishers (name, token_digest) VALUES ($1, $2)", [.text(name), .bytes(token.bytes)], deadline: deadline)
        case let .publisherDisabled(name):
            try c.execute("UPDATE ryze_publishers SET disabled = true WHERE name = $1", [.text(name)], deadline: deadline)
        case let .streamClosed(account, name, epoch):
            try c.execute("UPDATE ryze_instances SET stream_epoch = $3::int8 WHERE account = $1 AND name = $2",
                          [.text(account), .text(name), .int(Int64(epoch))], deadline: deadline)
        }
    }

    /// The whole state and the change sequence it stands at, read in one snapshot: a
    /// transaction of its own, or (`ownTransaction` false) the caller's, which must hold the
    /// write lock so that nothing changes between the queries.
    static func load(_ c: PGConnection, deadline: Deadline, ownTransaction: Bool = true) throws(StoreError) -> (State, Int64) {
        if ownTransaction { try c.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", deadline: deadline) }
        do {
            let seq = try c.execute("SELECT seq FROM ryze_change_seq WHERE id = 1", deadline: deadline)
            guard seq.rows == 1 else { throw StoreError.unusable("ryze_change_seq has no row: the schema is damaged") }
            var records: [LogRecord] = []
            let publishers = try c.execute("SELECT name, token_digest, disabled FROM ryze_publishers ORDER BY name", deadline: deadline)
            for r in 0..<publishers.rows {
                let name = publishers.text(r, 0)
                guard let token = TokenDigest(bytes: publishers.bytes(r, 1)) else { throw damaged("publisher \(name)") }
                records.append(.publisherCreated(name: name, token: token))
                if publishers.bool(r, 2) { records.append(.publisherDisabled(name: name)) }
            }
            let accounts = try c.execute("SELECT name, token_digest, instance_quota, disabled FROM ryze_accounts ORDER BY name", deadline: deadline)
            for r in 0..<accounts.rows {
                let name = accounts.text(r, 0)
                guard let token = TokenDigest(bytes: accounts.bytes(r, 1)) else { throw damaged("account \(name)") }
                records.append(.accountCreated(name: name, token: token, instanceQuota: UInt32(clamping: accounts.int(r, 2))))
                if accounts.bool(r, 3) { records.append(.accountDisabled(name: name)) }
            }
            let instances = try c.execute("""
                SELECT account, name, token_digest, ws_saved, ws_enabled, ws_events, ws_media_base64, stream_epoch
                FROM ryze_instances ORDER BY account, name
                """, deadline: deadline)
            for r in 0..<instances.rows {
                let account = instances.text(r, 0), name = instances.text(r, 1)
                guard let token = TokenDigest(bytes: instances.bytes(r, 2)) else { throw damaged("instance \(account)/\(name)") }
                let ws = instances.bool(r, 3)
                    ? WebSocketConfig(enabled: instances.bool(r, 4), events: events(instances.text(r, 5)), mediaBase64: instances.bool(r, 6))
                    : nil
                records.append(.instanceCreated(account: account, name: name, token: token, websocket: ws))
                let epoch = instances.int(r, 7)
                if epoch != 0 { records.append(.streamClosed(account: account, name: name, epoch: UInt32(clamping: epoch))) }
            }
            let webhooks = try c.execute("""
                SELECT account, instance, label, enabled, url, by_events, events, media_base64, key_id,
                       sealed_authorization, sealed_signing_secret, generation
                FROM ryze_webhooks ORDER BY account, instance, label
                """, deadline: deadline)
            for r in 0..<webhooks.rows {
                let account = webhooks.text(r, 0), name = webhooks.text(r, 1)
                guard let label = WebhookLabel(webhooks.text(r, 2)), let keyID = DeploymentKey.ID(bytes: webhooks.bytes(r, 8)) else {
                    throw damaged("webhook of \(account)/\(name)")
                }
                let config = WebhookConfig(label: label, enabled: webhooks.bool(r, 3), url: webhooks.text(r, 4), authorization: "",
                                           byEvents: webhooks.bool(r, 5), events: events(webhooks.text(r, 6)),
                                           mediaBase64: webhooks.bool(r, 7))
                records.append(.webhookSaved(account: account, name: name, webhook: StoredWebhook(
                    config: config, sealedAuthorization: webhooks.bytes(r, 9), sealedSigningSecret: webhooks.bytes(r, 10), keyID: keyID,
                    generation: UInt64(bitPattern: webhooks.int(r, 11)))))
            }
            if ownTransaction { try c.execute("COMMIT", deadline: deadline) }
            var state = State()
            for r in records { state.apply(r) }
            return (state, seq.int(0, 0))
        } catch {
            if ownTransaction && !c.broken { _ = try? c.execute("ROLLBACK", deadline: deadline) }
            throw (error as? StoreError) ?? .io("\(error)")
        }
    }

    /// Event names joined with commas, in their configured order (empty: all six).
    static func eventText(_ events: [EventType]) -> String { events.map(\.name).joined(separator: ",") }

    static func events(_ text: String) -> [EventType] {
        text.split(separator: ",").compactMap { EventType(name: String($0)) }
    }

    private static func damaged(_ what: String) -> StoreError {
        .unusable("PostgreSQL holds a malformed row (\(what)): the schema was edited by hand?")
    }
}
