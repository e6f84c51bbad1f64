extension Application {
    /// POST /api/events/webhook/:instance — replaces one label's configuration, never merges.
    func saveWebhook(_ request: HTTPRequest, _ context: RequestContext) throws(APIError) -> HTTPResponse {
        let target = try resolveInstance(context)
        guard let update = WebhookConfig.parse(body: try jsonBody(request)) else { throw .invalidBody }
        let sealer = try webhookSealer(account: target.account, instance: target.name, label: update.config.label)
        // Made before the write lock is taken: the decision below may not spend time on crypto.
        let fresh = SigningSecret.generate()
        let proposed = sealer.store(update.config, signingSecret: fresh)
        let saved = try write(context) { state throws(APIError) -> (LogRecord?, StoredWebhook) in
            let instance = try resolveInstance(context, in: state)
            guard instance.account == target.account else { throw .instanceNotFound }
            let label = update.config.label
            let existing = instance.webhooks[label]
            if existing == nil && instance.webhooks.count >= Application.maxWebhooks {
                throw .refused(.conflict, "Maximum of 20 webhooks per instance")
            }
            if update.config.enabled && instance.enabledWebhookCount - (existing?.config.enabled == true ? 1 : 0) >= Application.maxEnabledWebhooks {
                throw .refused(.conflict, "Maximum of 3 enabled webhooks per instance")
            }
            var stored = proposed.replacing(existing)
            if let existing, !update.rotateSecret { stored.sealedSigningSecret = existing.sealedSigningSecret }
            return (.webhookSaved(account: instance.account, name: instance.name, webhook: stored), stored)
        }
        return Application.success("Webhook configuration saved", [("webhook", try sealer.json(saved))])
    }

    /// GET /api/events/getWebhook/:instance and its alias GET /api/events/webhook/:instance:
    /// every label, or one with `?label=` (empty: `default`).
    func getWebhooks(_ request: HTTPRequest, _ context: RequestContext) throws(APIError) -> HTTPResponse {
        let instance = try resolveInstance(context)
        if let requested = request.queryValue("label") {
            guard let label = WebhookLabel.requested(requested), let webhook = instance.webhooks[label] else { throw .webhookNotFound }
            let sealer = try webhookSealer(account: instance.account, instance: instance.name, label: label)
            return Application.success("Webhook configuration retrieved", [("webhook", try sealer.json(webhook))])
        }
        var items: [JSONValue] = []
        for label in instance.webhooks.keys.sorted() {
            let sealer = try webhookSealer(account: instance.account, instance: instance.name, label: label)
            items.append(try sealer.json(instance.webhooks[label]!))
        }
        return Application.success("Webhooks retrieved", [("webhooks", .array(items))])
    }

    /// DELETE /api/events/webhook/:instance — the label from a JSON body `{"label": ...}` (a real
    /// client sends that form), else from `?label=`; neither, or `""`, means `default`. An empty
    /// body is no body; a body that is not an object with a string `label` is a 400.
    func deleteWebhook(_ request: HTTPRequest, _ context: RequestContext) throws(APIError) -> HTTPResponse {
        _ = try resolveInstance(context)
        let label: WebhookLabel?
        if request.body.isEmpty && !request.bodyTooLarge {
            label = WebhookLabel.requested(request.queryValue("label") ?? "")
        } else {
            let body = try jsonBody(request)
            guard case .object = body, case .string(let name)? = body["label"] else { throw .invalidBody }
            label = WebhookLabel.requested(name)
        }
        // A name that breaks the label rule can never have been saved.
        guard let label else { throw .webhookNotFound }
        try write(context) { state throws(APIError) -> (LogRecord?, Void) in
            let instance = try resolveInstance(context, in: state)
            guard instance.webhooks[label] != nil else { throw .webhookNotFound }
            return (.webhookDeleted(account: instance.account, name: instance.name, label: label), ())
        }
        return Application.success("Webhook deleted", [("webhook", .object([("label", .string(label.name))]))])
    }

    static let maxWebhooks = 20
    static let maxEnabledWebhooks = 3

    /// Seals and opens the secrets of one label, bound to where they belong.
    func webhookSealer(account: String, instance: String, label: WebhookLabel) throws(APIError) -> WebhookSealer {
        guard let secrets else { throw .storeFailed(.unusable("no deployment key is loaded")) }
        return WebhookSealer(box: secrets, account: account, instance: instance, label: label)
    }
}

/// The one place a webhook's secrets cross between clear and sealed.
struct WebhookSealer {
    let box: SecretBox
    let account: String
    let instance: String
    let label: WebhookLabel

    private func context(_ field: String) -> String {
        StoredWebhook.context(account: account, instance: instance, label: label, field: field)
    }

    /// The label as stored, secrets sealed, with a fresh generation (a new life of the label:
    /// `StoredWebhook.replacing` keeps the existing one's when the label stays enabled). Made
    /// before the write lock is taken, with the crypto and the random draw.
    func store(_ config: WebhookConfig, signingSecret: SigningSecret) -> StoredWebhook {
        StoredWebhook(config: config,
                      sealedAuthorization: config.authorization.isEmpty ? [] : box.seal(config.authorization, context: context("authorization")),
                      sealedSigningSecret: box.seal(signingSecret.text, context: context("signingSecret")),
                      keyID: box.key.id, generation: SecureRandom.nonZeroWord())
    }

    /// The whole webhook object, secrets opened: only for a token that may act on the instance.
    func json(_ stored: StoredWebhook) throws(APIError) -> JSONValue {
        do {
            let authorization = stored.sealedAuthorization.isEmpty ? "" : try box.open(stored.sealedAuthorization, context: context("authorization"))
            guard let secret = SigningSecret(text: try box.open(stored.sealedSigningSecret, context: context("signingSecret"))) else {
                throw SecretError.malformedBox(reason: "not a signing secret")
            }
            let c = stored.config
            let config = WebhookConfig(label: c.label, enabled: c.enabled, url: c.url, authorization: authorization,
                                       byEvents: c.byEvents, eventList: c.eventList, mediaBase64: c.mediaBase64)
            return config.json(signingSecret: secret)
        } catch {
            throw .storeFailed(.unusable("cannot open the secrets of webhook \(label.name) of \(account)/\(instance): \(error)"))
        }
    }
}
