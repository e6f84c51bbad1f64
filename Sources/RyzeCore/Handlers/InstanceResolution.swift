extension Application {
    /// SPEC §2's scope rules for a `:instance` path segment: an instance token may only name its
    /// own instance (403 otherwise, existing or not); an account token sees only what it owns (404).
    func resolveInstance(_ context: RequestContext, in state: State) -> Result<State.Instance, Refusal> {
        let name = context.parameters["instance"] ?? ""
        switch context.principal {
        case .instance(let key):
            guard key.name == name else {
                return .failure(Refusal(response: .error(.forbidden, "Instance token does not match the requested instance")))
            }
            guard let instance = state.instances[key] else { return .failure(Application.instanceNotFound) }
            return .success(instance)
        case .account(let account):
            guard Names.isValidName(name), let instance = state.instance(account: account, name: name) else {
                return .failure(Application.instanceNotFound)
            }
            return .success(instance)
        }
    }

    static let instanceNotFound = Refusal(response: .error(.notFound, "Instance not found"))

    /// The JSON body of a request, or the contract's 413/400.
    func jsonBody(_ request: HTTPRequest) -> Result<JSONValue, Refusal> {
        if request.bodyTooLarge || request.body.count > configuration.maxBodyBytes {
            return .failure(Refusal(response: .error(.payloadTooLarge, "Request body too large")))
        }
        guard let value = try? JSONParser.parse(request.body) else {
            return .failure(Refusal(response: .error(.badRequest, "Invalid request body")))
        }
        return .success(value)
    }

    static func success(_ message: String, _ payload: [(String, JSONValue)]) -> HTTPResponse {
        success(.ok, message, payload)
    }

    static func success(_ status: HTTPStatus, _ message: String, _ payload: [(String, JSONValue)]) -> HTTPResponse {
        .json(status, .object([("success", .bool(true)), ("message", .string(message))] + payload))
    }
}
