/// Everything the log says, folded: what replaying every record in order leaves behind.
public struct State: Sendable {
    public struct Account: Sendable, Equatable {
        public var name: String
        public var token: TokenDigest
        public var instanceQuota: UInt32
        public var disabled: Bool
        public var instances: Set<String>
    }

    public struct InstanceKey: Hashable, Sendable {
        public var account: String
        public var name: String
        public init(account: String, name: String) { self.account = account; self.name = name }
    }

    public struct Instance: Sendable, Equatable {
        public var account: String
        public var name: String
        public var token: TokenDigest
        public var websocket: WebSocketConfig?
        /// Every label, enabled or not (SPEC §4: at most 20, at most 3 enabled).
        public var webhooks: [WebhookLabel: StoredWebhook] = [:]
        /// How many times its open WebSocket connections were closed without deleting it (the
        /// configuration disabled): part of its fan-out channel (`StreamChannel`), since a channel
        /// is never used again once closed.
        public var streamEpoch: UInt32 = 0

        public var enabledWebhookCount: Int { webhooks.values.reduce(0) { $0 + ($1.config.enabled ? 1 : 0) } }
    }

    public enum Principal: Equatable, Sendable {
        case account(String)
        case instance(InstanceKey)
        /// A producer of events (SPEC §6.1): good for publishing only.
        case publisher(String)
    }

    /// A publisher token's holder: the service that runs the instances' sessions.
    public struct Publisher: Sendable, Equatable {
        public var name: String
        public var token: TokenDigest
        public var disabled: Bool
    }

    public private(set) var accounts: [String: Account] = [:]
    public private(set) var instances: [InstanceKey: Instance] = [:]
    public private(set) var publishers: [String: Publisher] = [:]
    private var tokens: [TokenDigest: Principal] = [:]
    /// The accounts holding an instance of each name: publishers name instances without their
    /// account (SPEC §6.1), and names are unique only within an account.
    private var owners: [String: [String]] = [:]
    /// Records applied since the log began (or since its last compaction).
    public private(set) var recordCount = 0
    private var disabledAccounts = 0
    private var webhookCount = 0
    /// Instances whose `streamEpoch` is not 0: each keeps a `streamClosed` record.
    private var closedStreams = 0

    /// How many records `liveRecords` holds: what a compaction would leave.
    public var liveRecordCount: Int {
        accounts.count + disabledAccounts + instances.count + webhookCount + publishers.count + disabledPublishers + closedStreams
    }
    private var disabledPublishers = 0

    /// The deployment keys that live webhook secrets are sealed under (normally one, or none).
    public var sealedKeyIDs: Set<DeploymentKey.ID> {
        var ids: Set<DeploymentKey.ID> = []
        for i in instances.values { for h in i.webhooks.values { ids.insert(h.keyID) } }
        return ids
    }

    public init() {}

    /// The owner of a token, or nil when it is unknown, deleted, or its account is disabled.
    public func principal(for token: TokenDigest) -> Principal? {
        withUnsafePointer(to: self) { State.principal(in: $0, for: token) }
    }

    /// The same, reading the state in place: the request path's way (`LogStore.principal`).
    /// Property by property through the pointer, so that nothing copies the whole state.
    public static func principal(in state: UnsafePointer<State>, for token: TokenDigest) -> Principal? {
        guard let p = state.pointee.tokens[token] else { return nil }
        switch p {
        case .account(let name):
            return state.pointee.accounts[name]?.disabled == false ? p : nil
        case .instance(let key):
            return state.pointee.accounts[key.account]?.disabled == false ? p : nil
        case .publisher(let name):
            return state.pointee.publishers[name]?.disabled == false ? p : nil
        }
    }

    /// The accounts that hold an instance called `name`, in no particular order.
    public func owners(ofInstanceNamed name: String) -> [String] { owners[name] ?? [] }

    /// True when any account or instance, live or disabled, holds this token.
    public func tokenInUse(_ token: TokenDigest) -> Bool { tokens[token] != nil }

    public func instance(account: String, name: String) -> Instance? {
        instances[InstanceKey(account: account, name: name)]
    }

    /// Records that would rebuild this state from nothing: what compaction writes.
    public var liveRecords: [LogRecord] {
        var out: [LogRecord] = []
        for p in publishers.values.sorted(by: { $0.name < $1.name }) {
            out.append(.publisherCreated(name: p.name, token: p.token))
            if p.disabled { out.append(.publisherDisabled(name: p.name)) }
        }
        for a in accounts.values.sorted(by: { $0.name < $1.name }) {
            out.append(.accountCreated(name: a.name, token: a.token, instanceQuota: a.instanceQuota))
            if a.disabled { out.append(.accountDisabled(name: a.name)) }
            for n in a.instances.sorted() {
                guard let i = instances[InstanceKey(account: a.name, name: n)] else { continue }
                out.append(.instanceCreated(account: i.account, name: i.name, token: i.token, websocket: i.websocket))
                if i.streamEpoch != 0 { out.append(.streamClosed(account: i.account, name: i.name, epoch: i.streamEpoch)) }
                for label in i.webhooks.keys.sorted() {
                    out.append(.webhookSaved(account: i.account, name: i.name, webhook: i.webhooks[label]!))
                }
            }
        }
        return out
    }

    /// Applies one record. Records were checked against the state when written, under the
    /// deployment-wide write lock, so a record that no longer fits is skipped, not fatal.
    public mutating func apply(_ record: LogRecord) {
        recordCount += 1
        applyChange(record)
    }

    private mutating func applyChange(_ record: LogRecord) {
        switch record {
        case let .accountCreated(name, token, quota):
            guard accounts[name] == nil, tokens[token] == nil else { return }
            accounts[name] = Account(name: name, token: token, instanceQuota: quota, disabled: false, instances: [])
            tokens[token] = .account(name)
        case let .accountDisabled(name):
            guard var a = accounts[name], !a.disabled else { return }
            a.disabled = true
            accounts[name] = a
            disabledAccounts += 1
        case let .instanceCreated(account, name, token, websocket):
            let key = InstanceKey(account: account, name: name)
            guard accounts[account] != nil, instances[key] == nil, tokens[token] == nil else { return }
            instances[key] = Instance(account: account, name: name, token: token, websocket: websocket)
            addInstance(name, to: account)
            tokens[token] = .instance(key)
            owners[name, default: []].append(account)
        case let .instanceDeleted(account, name):
            let key = InstanceKey(account: account, name: name)
            guard let i = instances.removeValue(forKey: key) else { return }
            tokens[i.token] = nil
            webhookCount -= i.webhooks.count
            if i.streamEpoch != 0 { closedStreams -= 1 }
            if var o = owners.removeValue(forKey: name) {
                o.removeAll { $0 == account }
                if !o.isEmpty { owners[name] = o }
            }
            if var a = accounts.removeValue(forKey: account) {
                a.instances.remove(name)
                accounts[account] = a
            }
        case let .websocketSaved(account, name, websocket):
            // Get, change, put back: `instances[key]?.websocket = ...` goes through Dictionary's
            // nested modify coroutines, whose frames cost three heap allocations per record.
            let key = InstanceKey(account: account, name: name)
            guard var i = instances[key] else { return }
            i.websocket = websocket
            instances[key] = i
        case let .webhookSaved(account, name, webhook):
            let key = InstanceKey(account: account, name: name)
            guard var i = instances.removeValue(forKey: key) else { return }
            if i.webhooks.updateValue(webhook, forKey: webhook.label) == nil { webhookCount += 1 }
            instances[key] = i
        case let .webhookDeleted(account, name, label):
            let key = InstanceKey(account: account, name: name)
            guard var i = instances.removeValue(forKey: key) else { return }
            if i.webhooks.removeValue(forKey: label) != nil { webhookCount -= 1 }
            instances[key] = i
        case let .streamClosed(account, name, epoch):
            let key = InstanceKey(account: account, name: name)
            guard var i = instances[key] else { return }
            if (i.streamEpoch == 0) != (epoch == 0) { closedStreams += epoch == 0 ? -1 : 1 }
            i.streamEpoch = epoch
            instances[key] = i
        case .batch(let records):
            for r in records { applyChange(r) }
        case let .publisherCreated(name, token):
            guard publishers[name] == nil, tokens[token] == nil else { return }
            publishers[name] = Publisher(name: name, token: token, disabled: false)
            tokens[token] = .publisher(name)
        case let .publisherDisabled(name):
            guard var p = publishers[name], !p.disabled else { return }
            p.disabled = true
            publishers[name] = p
            disabledPublishers += 1
        }
    }

    /// Moved out of the dictionary while its set grows, so the set is uniquely referenced and
    /// grows in place instead of being copied.
    private mutating func addInstance(_ name: String, to account: String) {
        guard var a = accounts.removeValue(forKey: account) else { return }
        a.instances.insert(name)
        accounts[account] = a
    }
}
