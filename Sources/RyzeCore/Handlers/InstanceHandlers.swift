extension Application {
    /// POST /api/instance/new (account token only; its own rate-limit bucket).
    func createInstance(_ request: HTTPRequest, _ context: RequestContext) throws(APIError) -> HTTPResponse {
        guard case .account(let account) = context.principal else { throw .invalidToken }
        let body = try jsonBody(request)
        guard case .object = body, case .string(let name)? = body["name"], Names.isValidName(name) else { throw .invalidBody }
        let token: String
        switch body["token"] {
        case nil, .null?: token = TokenGenerator.make()
        case .string(let chosen)? where Names.isValidChosenToken(chosen): token = chosen
        default: throw .invalidBody
        }
        // An invalid websocket block does not abort creation (RyzeAPI: log and continue).
        var websocket: WebSocketConfig?
        let fields = (body["websocketEnabled"], body["websocketEvents"], body["websocketMediaBase64"])
        if fields.0 != nil || fields.1 != nil || fields.2 != nil {
            websocket = WebSocketConfig.parse(enabled: fields.0, events: fields.1, mediaBase64: fields.2)
            if websocket == nil {
                logger.notice("instance created without its invalid websocket block", metadata: ["account": "\(account)", "instance": "\(name)"])
            }
        }
        // The same for the webhook block, saved as the `default` label.
        var webhook: (stored: StoredWebhook, sealer: WebhookSealer)?
        if WebhookConfig.hasInstanceFields(body) {
            if let config = WebhookConfig.parseInstanceFields(body) {
                let sealer = try webhookSealer(account: account, instance: name, label: .default)
                webhook = (sealer.store(config, signingSecret: .generate()), sealer)
            } else {
                logger.notice("instance created without its invalid webhook block", metadata: ["account": "\(account)", "instance": "\(name)"])
            }
        }
        let digest = TokenDigest(of: token)
        try write(context) { state throws(APIError) -> (LogRecord?, Void) in
            guard let owner = state.accounts[account] else { throw .invalidToken }
            if state.instance(account: account, name: name) != nil { throw .refused(.conflict, "Instance name already exists") }
            if state.tokenInUse(digest) { throw .refused(.conflict, "Token already in use") }
            if owner.instanceQuota > 0 && owner.instances.count >= Int(owner.instanceQuota) {
                throw .refused(.forbidden, "Account instance quota exceeded")
            }
            let created = LogRecord.instanceCreated(account: account, name: name, token: digest, websocket: websocket)
            guard let webhook else { return (created, ()) }
            return (.batch([created, .webhookSaved(account: account, name: name, webhook: webhook.stored)]), ())
        }
        return Application.success(.created, "Instance created", [
            ("instance", .object([
                ("name", .string(name)),
                ("token", .string(token)),
                ("status", .string("disconnected")),
                ("websocket", websocket?.json ?? .null),
                ("webhook", try webhook.map { w throws(APIError) in try w.sealer.json(w.stored) } ?? .null),
            ])),
        ])
    }

    /// GET /api/instance/list[?instanceName=a,b]
    func listInstances(_ request: HTTPRequest, _ context: RequestContext) throws(APIError) -> HTTPResponse {
        let filter: [String]? = request.queryValue("instanceName").map { raw in
            raw.split(separator: ",").map { $0.trimmedSpaces }.filter { !$0.isEmpty }
        }
        let found: [State.Instance]? = store.read { state in
            switch context.principal {
            case .instance(let key):
                return state.instances[key].map { [$0] } ?? []
            case .publisher:
                return []   // `Authorization` keeps publishers off this route
            case .account(let account):
                let owned = state.accounts[account]?.instances ?? []
                var names = owned
                if let filter, !filter.isEmpty {
                    names = owned.intersection(filter)
                    if Set(filter).count == 1 && names.isEmpty { return nil }
                }
                return names.sorted().compactMap { state.instance(account: account, name: $0) }
            }
        }
        guard let found else { throw .instanceNotFound }
        let message = found.count == 1 ? "1 Instance found" : "\(found.count) Instances found"
        return Application.success(message, [
            ("instances", .array(found.map { i in
                .object([
                    ("name", .string(i.name)),
                    ("status", .string("disconnected")),
                    ("websocket", (i.websocket ?? .unconfigured).json),
                    ("webhook", (i.webhooks[.default]?.config ?? .unconfigured).summaryJSON),
                ])
            })),
        ])
    }

    /// DELETE /api/instance/delete/:instance (account token only).
    func deleteInstance(_ context: RequestContext) throws(APIError) -> HTTPResponse {
        let channel = try write(context) { state throws(APIError) -> (LogRecord?, String) in
            let instance = try resolveInstance(context, in: state)
            return (.instanceDeleted(account: instance.account, name: instance.name), StreamChannel.id(of: instance))
        }
        // Only once the delete is durable: its token can no longer open a stream, so the
        // subscribers closed here cannot come back (SPEC §4).
        stream?.close(channel: channel)
        return Application.success("Instance deleted", [("instance", .object([("status", .string("deleted"))]))])
    }
}
