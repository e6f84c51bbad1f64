import RyzeCore
import RyzeHTTP

/// The HTTP request of one attempt (SPEC §6.3): the envelope (with the webhook's `mediaBase64`
/// applied) POSTed with the Standard Webhooks headers. The secrets are opened here, for this
/// request only, with the context they were sealed with (`account/instance/label/field`, as
/// the webhook endpoints seal them), and never leave it but in the headers.
enum SignedRequest {
    /// `ryze-events/<version>`.
    static let userAgent = "ryze-events/" + Deliverer.version

    enum Failure: Error, CustomStringConvertible {
        case secrets(SecretError)
        case badSigningSecret

        var description: String {
            switch self {
            case .secrets(let e): return "cannot open the webhook's secrets: \(e)"
            case .badSigningSecret: return "cannot open the webhook's secrets: not a signing secret"
            }
        }
    }

    /// `body` is what goes on the wire (the envelope after media stripping); `timestamp` the
    /// attempt's Unix seconds.
    static func make(event: DeliveryQueue.Event, label: WebhookLabel, target: WebhookTarget, body: [UInt8], timestamp: Int64,
                     secrets: SecretBox, timeout: Double, pinnedAddress: String?) throws(Failure) -> HTTPClient.Request {
        func context(_ field: String) -> String {
            StoredWebhook.context(account: event.account, instance: event.instance, label: label, field: field)
        }
        let hook = target.webhook
        let authorization: String
        let secretText: String
        do {
            authorization = hook.sealedAuthorization.isEmpty ? "" : try secrets.open(hook.sealedAuthorization, context: context("authorization"))
            secretText = try secrets.open(hook.sealedSigningSecret, context: context("signingSecret"))
        } catch {
            throw .secrets(error)
        }
        guard let secret = SigningSecret(text: secretText) else { throw .badSigningSecret }
        var headers: [(String, String)] = [
            ("Content-Type", "application/json"),
            ("User-Agent", userAgent),
        ]
        if !authorization.isEmpty { headers.append(("Authorization", authorization)) }
        headers += [
            ("webhook-id", event.id),
            ("webhook-timestamp", String(timestamp)),
            ("webhook-signature", secret.signature(webhookID: event.id, timestamp: timestamp, body: body)),
        ]
        return HTTPClient.Request(method: "POST", url: target.url, headers: headers, body: body, timeout: timeout,
                                  connectTimeout: min(timeout, 5), pinnedAddress: pinnedAddress)
    }
}
