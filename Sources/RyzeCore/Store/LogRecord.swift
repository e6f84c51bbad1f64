/// One change to the deployment's state. The log is a sequence of these; replaying it in order
/// rebuilds every account, instance and WebSocket configuration.
public enum LogRecord: LogEntry, Equatable {
    case accountCreated(name: String, token: TokenDigest, instanceQuota: UInt32)
    case accountDisabled(name: String)
    case instanceCreated(account: String, name: String, token: TokenDigest, websocket: WebSocketConfig?)
    case instanceDeleted(account: String, name: String)
    case websocketSaved(account: String, name: String, websocket: WebSocketConfig)
    /// Creates or replaces one label of an instance's webhooks.
    case webhookSaved(account: String, name: String, webhook: StoredWebhook)
    case webhookDeleted(account: String, name: String, label: WebhookLabel)
    /// Several records in one frame, applied together or not at all (one checksum covers them).
    /// Never nested.
    case batch([LogRecord])
    /// A producer's publisher token (SPEC §6.1), as its digest.
    case publisherCreated(name: String, token: TokenDigest)
    case publisherDisabled(name: String)
    /// The instance's open WebSocket connections were closed (its configuration was disabled):
    /// its fan-out channel is now the one of `epoch` (`State.Instance.streamEpoch`).
    case streamClosed(account: String, name: String, epoch: UInt32)

    // Type tags are part of the on-disk format (log_format.md): never renumber.
    enum Tag: UInt8 {
        case accountCreated = 1, accountDisabled = 2, instanceCreated = 3, instanceDeleted = 4, websocketSaved = 5
        case webhookSaved = 6, webhookDeleted = 7, batch = 8, publisherCreated = 9, publisherDisabled = 10
        case streamClosed = 11
        /// `webhookSaved` with the label's generation after it; written only when that is not 0,
        /// so a label from before generations keeps type 6 (byte for byte, and readable by the
        /// binaries before this type).
        case webhookSavedWithGeneration = 12
    }

    public func encode() -> [UInt8] {
        var w = ByteWriter()
        switch self {
        case let .accountCreated(name, token, quota):
            w.u8(Tag.accountCreated.rawValue); w.string(name); w.digest(token); w.u32(quota)
        case let .accountDisabled(name):
            w.u8(Tag.accountDisabled.rawValue); w.string(name)
        case let .instanceCreated(account, name, token, websocket):
            w.u8(Tag.instanceCreated.rawValue); w.string(account); w.string(name); w.digest(token); w.websocket(websocket)
        case let .instanceDeleted(account, name):
            w.u8(Tag.instanceDeleted.rawValue); w.string(account); w.string(name)
        case let .websocketSaved(account, name, websocket):
            w.u8(Tag.websocketSaved.rawValue); w.string(account); w.string(name); w.websocket(websocket)
        case let .webhookSaved(account, name, webhook):
            let tag: Tag = webhook.generation == 0 ? .webhookSaved : .webhookSavedWithGeneration
            w.u8(tag.rawValue); w.string(account); w.string(name); w.webhook(webhook)
            if webhook.generation != 0 { w.u64(webhook.generation) }
        case let .webhookDeleted(account, name, label):
            w.u8(Tag.webhookDeleted.rawValue); w.string(account); w.string(name); w.string(label.name)
        case .batch(let records):
            precondition(records.count <= Int(UInt16.max))
            w.u8(Tag.batch.rawValue); w.u16(UInt16(records.count))
            for r in records {
                precondition(!r.isBatch, "batches are never nested")
                let payload = r.encode()
                w.u32(UInt32(payload.count))
                w.bytes.append(contentsOf: payload)
            }
        case let .publisherCreated(name, token):
            w.u8(Tag.publisherCreated.rawValue); w.string(name); w.digest(token)
        case let .publisherDisabled(name):
            w.u8(Tag.publisherDisabled.rawValue); w.string(name)
        case let .streamClosed(account, name, epoch):
            w.u8(Tag.streamClosed.rawValue); w.string(account); w.string(name); w.u32(epoch)
        }
        return w.bytes
    }

    var isBatch: Bool {
        if case .batch = self { return true }
        return false
    }

    /// nil when the payload is not a record this version understands.
    public static func decode(_ payload: UnsafeRawBufferPointer) -> LogRecord? {
        var r = ByteReader(payload)
        guard let raw = r.u8(), let tag = Tag(rawValue: raw) else { return nil }
        let record: LogRecord?
        switch tag {
        case .accountCreated:
            guard let name = r.string(), let token = r.digest(), let quota = r.u32() else { return nil }
            record = .accountCreated(name: name, token: token, instanceQuota: quota)
        case .accountDisabled:
            guard let name = r.string() else { return nil }
            record = .accountDisabled(name: name)
        case .instanceCreated:
            guard let account = r.string(), let name = r.string(), let token = r.digest(),
                  let ws = r.websocket() else { return nil }
            record = .instanceCreated(account: account, name: name, token: token, websocket: ws)
        case .instanceDeleted:
            guard let account = r.string(), let name = r.string() else { return nil }
            record = .instanceDeleted(account: account, name: name)
        case .websocketSaved:
            guard let account = r.string(), let name = r.string(), let ws = r.websocket(), let config = ws else { return nil }
            record = .websocketSaved(account: account, name: name, websocket: config)
        case .webhookSaved:
            guard let account = r.string(), let name = r.string(), let webhook = r.webhook() else { return nil }
            record = .webhookSaved(account: account, name: name, webhook: webhook)
        case .webhookSavedWithGeneration:
            guard let account = r.string(), let name = r.string(), var webhook = r.webhook(),
                  let generation = r.u64(), generation != 0 else { return nil }
            webhook.generation = generation
            record = .webhookSaved(account: account, name: name, webhook: webhook)
        case .webhookDeleted:
            guard let account = r.string(), let name = r.string(), let label = r.string().flatMap(WebhookLabel.init) else { return nil }
            record = .webhookDeleted(account: account, name: name, label: label)
        case .batch:
            guard let count = r.u16(), count > 0 else { return nil }
            var records: [LogRecord] = []
            for _ in 0..<count {
                guard let n = r.u32().map(Int.init), let inner = r.bytes(n),
                      let decoded = LogRecord.decode(inner), !decoded.isBatch else { return nil }
                records.append(decoded)
            }
            record = .batch(records)
        case .publisherCreated:
            guard let name = r.string(), let token = r.digest() else { return nil }
            record = .publisherCreated(name: name, token: token)
        case .publisherDisabled:
            guard let name = r.string() else { return nil }
            record = .publisherDisabled(name: name)
        case .streamClosed:
            guard let account = r.string(), let name = r.string(), let epoch = r.u32() else { return nil }
            record = .streamClosed(account: account, name: name, epoch: epoch)
        }
        return r.atEnd ? record : nil
    }
}

struct ByteWriter {
    var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(64) }

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes.append(UInt8(v & 0xFF)); bytes.append(UInt8(v >> 8)) }
    mutating func u32(_ v: UInt32) { for k in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(k)))) } }
    mutating func string(_ s: String) {
        let u = Array(s.utf8)
        precondition(u.count <= Int(UInt16.max))
        u16(UInt16(u.count))
        bytes.append(contentsOf: u)
    }
    mutating func digest(_ d: TokenDigest) { bytes.append(contentsOf: d.bytes) }
    mutating func websocket(_ c: WebSocketConfig?) {
        guard let c else { u8(0); return }
        u8(1 | (c.enabled ? 2 : 0) | (c.mediaBase64 ? 4 : 0))
        events(c.eventList)
    }
    mutating func events(_ list: EventList) {
        u8(UInt8(list.count))
        for e in list { u8(e.rawValue) }
    }
    mutating func blob(_ b: [UInt8]) {
        precondition(b.count <= Int(UInt16.max))
        u16(UInt16(b.count))
        bytes.append(contentsOf: b)
    }
    /// `label, flags u8 (bit 0 enabled, bit 1 byEvents, bit 2 mediaBase64), url, events, key id
    /// (8 bytes), sealed authorization (u16 length, empty = none), sealed signing secret`.
    mutating func webhook(_ h: StoredWebhook) {
        let c = h.config
        string(c.label.name)
        u8((c.enabled ? 1 : 0) | (c.byEvents ? 2 : 0) | (c.mediaBase64 ? 4 : 0))
        string(c.url)
        events(c.eventList)
        bytes.append(contentsOf: h.keyID.bytes)
        blob(h.sealedAuthorization)
        blob(h.sealedSigningSecret)
    }
}

struct ByteReader {
    let buf: UnsafeRawBufferPointer
    var i = 0

    init(_ buf: UnsafeRawBufferPointer) { self.buf = buf }

    var atEnd: Bool { i == buf.count }

    mutating func u8() -> UInt8? {
        guard i < buf.count else { return nil }
        defer { i += 1 }
        return buf[i]
    }
    mutating func u16() -> UInt16? {
        guard i + 2 <= buf.count else { return nil }
        defer { i += 2 }
        return UInt16(buf[i]) | UInt16(buf[i + 1]) << 8
    }
    mutating func u32() -> UInt32? {
        guard i + 4 <= buf.count else { return nil }
        defer { i += 4 }
        return UInt32(littleEndian: buf.loadUnaligned(fromByteOffset: i, as: UInt32.self))
    }
    mutating func string() -> String? {
        guard let n = u16().map(Int.init), i + n <= buf.count else { return nil }
        defer { i += n }
        return String.fromUTF8(UnsafeRawBufferPointer(rebasing: buf[i..<i + n]).bindMemory(to: UInt8.self))
    }
    mutating func digest() -> TokenDigest? {
        guard i + 32 <= buf.count else { return nil }
        defer { i += 32 }
        return TokenDigest(bytes: UnsafeRawBufferPointer(rebasing: buf[i..<i + 32]))
    }
    /// Outer nil: malformed. Inner nil: "no configuration".
    mutating func websocket() -> WebSocketConfig?? {
        guard let flags = u8() else { return nil }
        if flags & 1 == 0 { return .some(nil) }
        guard let events = events() else { return nil }
        return .some(WebSocketConfig(enabled: flags & 2 != 0, eventList: events, mediaBase64: flags & 4 != 0))
    }
    mutating func events() -> EventList? {
        guard let n = u8() else { return nil }
        var events = EventList()
        for _ in 0..<n {
            guard let raw = u8(), let t = EventType(rawValue: raw), events.count < EventList.capacity else { return nil }
            events.append(t)
        }
        return events
    }
    /// The next `n` bytes, as a view into the payload.
    mutating func bytes(_ n: Int) -> UnsafeRawBufferPointer? {
        guard n >= 0, i + n <= buf.count else { return nil }
        defer { i += n }
        return UnsafeRawBufferPointer(rebasing: buf[i..<i + n])
    }
    mutating func blob() -> [UInt8]? {
        guard let n = u16().map(Int.init), let b = bytes(n) else { return nil }
        return Array(b)
    }
    mutating func webhook() -> StoredWebhook? {
        guard let label = string().flatMap(WebhookLabel.init), let flags = u8(), flags & ~7 == 0, let url = string(),
              let events = events(), let id = bytes(DeploymentKey.ID.byteCount).flatMap({ DeploymentKey.ID(bytes: Array($0)) }),
              let auth = blob(), let secret = blob(), !secret.isEmpty else { return nil }
        let config = WebhookConfig(label: label, enabled: flags & 1 != 0, url: url, authorization: "",
                                   byEvents: flags & 2 != 0, eventList: events, mediaBase64: flags & 4 != 0)
        return StoredWebhook(config: config, sealedAuthorization: auth, sealedSigningSecret: secret, keyID: id)
    }
}
