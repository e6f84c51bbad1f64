/// The one way a handler fails. The pipeline's responder turns it into the contract's envelope,
/// in one place: a refusal as it is, a store failure as the endpoint's own 500 (the details go
/// to the log, never into the answer).
public enum APIError: Error {
    case refused(HTTPStatus, String)
    case storeFailed(StoreError)

    static let instanceNotFound = APIError.refused(.notFound, "Instance not found")
    static let invalidBody = APIError.refused(.badRequest, "Invalid request body")
    static let invalidToken = APIError.refused(.unauthorized, "Invalid token")
    static let webhookNotFound = APIError.refused(.notFound, "Webhook not found")
}
