extension Application {
    /// SPEC §2's scope rules for a `:instance` path segment: an instance token may only name its
    /// own instance (403 otherwise, existing or not); an account token sees only what it owns (404).
    func resolveInstance(_ context: RequestContext, in state: State) throws(APIError) -> State.Instance {
        try resolveInstance(context) { state.instances[$0] }
    }

    /// The same against the current state, read in place (see `StateStore.instance`).
    func resolveInstance(_ context: RequestContext) throws(APIError) -> State.Instance {
        try resolveInstance(context) { store.instance($0) }
    }

    private func resolveInstance(_ context: RequestContext, lookup: (State.InstanceKey) -> State.Instance?) throws(APIError) -> State.Instance {
        let name = context.parameters["instance"] ?? ""
        switch context.principal {
        case .instance(let key):
            guard key.name == name else { throw .refused(.forbidden, "Instance token does not match the requested instance") }
            guard let instance = lookup(key) else { throw .instanceNotFound }
            return instance
        case .account(let account):
            guard Names.isValidName(name), let instance = lookup(State.InstanceKey(account: account, name: name)) else { throw .instanceNotFound }
            return instance
        case .publisher:
            throw .invalidToken   // `Authorization` keeps publishers off these routes; kept for safety
        }
    }

    /// The JSON body of a request, or the contract's 413/400. `limit`: the route's largest body
    /// (the configuration endpoints' 64 KiB unless said otherwise).
    func jsonBody(_ request: HTTPRequest, limit: Int? = nil) throws(APIError) -> JSONValue {
        if request.bodyTooLarge || request.body.count > (limit ?? configuration.maxBodyBytes) {
            throw .refused(.payloadTooLarge, "Request body too large")
        }
        guard let value = try? JSONParser.parse(request.body) else { throw .invalidBody }
        return value
    }

    /// A store write on behalf of a request. `decide` runs under the deployment's write lock
    /// against the current state (see `StateStore.write` for what it may not do); the caller's
    /// token is checked again there first, so a token revoked after authentication changes nothing.
    func write<T>(_ context: RequestContext, _ decide: (State) throws(APIError) -> (LogRecord?, T)) throws(APIError) -> T {
        do {
            return try store.write { state throws(APIError) -> (LogRecord?, T) in
                guard state.principal(for: context.digest) == context.principal else { throw .invalidToken }
                return try decide(state)
            }
        } catch let error as APIError {
            throw error
        } catch let error as StoreError {
            throw .storeFailed(error)
        } catch {
            throw .storeFailed(.io("\(error)"))
        }
    }

    static func success(_ message: String, _ payload: [(String, JSONValue)]) -> HTTPResponse {
        success(.ok, message, payload)
    }

    static func success(_ status: HTTPStatus, _ message: String, _ payload: [(String, JSONValue)]) -> HTTPResponse {
        .json(status, .object([("success", .bool(true)), ("message", .string(message))] + payload))
    }
}
