/// The account rules, beside the instance rules of the handlers: the command line only parses
/// arguments and prints what these return.
public enum Accounts {
    public struct Refusal: Error, CustomStringConvertible {
        public let description: String
    }

    /// Creates an account holding `token` (as its digest).
    public static func create(in store: some StateStore, name: String, token: String, instanceQuota: UInt32) throws {
        let digest = TokenDigest(of: token)
        try store.write { state throws(Refusal) -> (LogRecord?, Void) in
            if state.accounts[name] != nil { throw Refusal(description: "account \(name) already exists") }
            if state.tokenInUse(digest) { throw Refusal(description: "that token is already in use") }
            return (.accountCreated(name: name, token: digest, instanceQuota: instanceQuota), ())
        }
    }

    /// Disables an account: its token and its instances' tokens stop working at once. Disabling
    /// a disabled account changes nothing. Returns the fan-out channels of its instances
    /// (`StreamChannel`), for the caller to close their open WebSocket connections once the
    /// disable is durable; an account is never enabled again, so those channels are never
    /// subscribed to again.
    @discardableResult
    public static func disable(in store: some StateStore, name: String) throws -> [String] {
        try store.write { state throws(Refusal) -> (LogRecord?, [String]) in
            guard let account = state.accounts[name] else { throw Refusal(description: "no account named \(name)") }
            let channels = account.instances.sorted().compactMap { state.instance(account: name, name: $0).map(StreamChannel.id(of:)) }
            return (account.disabled ? nil : .accountDisabled(name: name), channels)
        }
    }

    /// Every account, sorted by name.
    public static func list(in store: some StateStore) -> [State.Account] {
        store.read { $0.accounts.values.sorted { $0.name < $1.name } }
    }
}

/// The publisher rules (SPEC §6.1): like accounts, a name and a token stored as its digest.
public enum Publishers {
    /// Creates a publisher holding `token`; the name follows the account name rule.
    public static func create(in store: some StateStore, name: String, token: String) throws {
        let digest = TokenDigest(of: token)
        try store.write { state throws(Accounts.Refusal) -> (LogRecord?, Void) in
            if state.publishers[name] != nil { throw Accounts.Refusal(description: "publisher \(name) already exists") }
            if state.tokenInUse(digest) { throw Accounts.Refusal(description: "that token is already in use") }
            return (.publisherCreated(name: name, token: digest), ())
        }
    }

    /// Its token stops working at once, in every worker.
    public static func disable(in store: some StateStore, name: String) throws {
        try store.write { state throws(Accounts.Refusal) -> (LogRecord?, Void) in
            guard let p = state.publishers[name] else { throw Accounts.Refusal(description: "no publisher named \(name)") }
            return (p.disabled ? nil : .publisherDisabled(name: name), ())
        }
    }

    public static func list(in store: some StateStore) -> [State.Publisher] {
        store.read { $0.publishers.values.sorted { $0.name < $1.name } }
    }
}
