extension Application {
    /// POST /api/events/publish/:instance (publisher tokens only; SPEC §6.1). The event is
    /// filtered by the instance's configurations as they are now: queued durably for each
    /// enabled webhook that takes it, then handed to the WebSocket fan-out (best effort).
    func publish(_ request: HTTPRequest, _ context: RequestContext) throws(APIError) -> HTTPResponse {
        let body = try jsonBody(request, limit: configuration.maxPublishBodyBytes)
        guard case .object = body, case .string(let eventName)? = body["event"], let event = EventType(name: eventName),
              case .object? = body["data"], let data = RawJSON.valueRange(request.body, path: ["data"]) else { throw .invalidBody }
        let id: String
        switch body["id"] {
        case nil: id = EventID.make(nowMicroseconds: limiter.clock.nowMicroseconds())
        case .string(let given)? where EventID.isValid(given): id = given
        default: throw .invalidBody
        }
        let instance = try store.read { state throws(APIError) in try publishedInstance(context.parameters["instance"] ?? "", in: state) }
        let envelope = EventEnvelope.make(event: event, data: request.body[data], baseURL: configuration.baseURL, instance: instance.name)

        let hooks = instance.webhooks.values.filter { $0.config.enabled && $0.config.eventList.accepts(event) }.sorted { $0.label < $1.label }
        let labels = hooks.map(\.label)
        if !labels.isEmpty {
            guard let queue else { throw .storeFailed(.unusable("no delivery queue is open")) }
            do {
                try queue.enqueue(QueuedEvent(id: id, account: instance.account, instance: instance.name, event: event,
                                              envelope: envelope, labels: labels, generations: hooks.map(\.generation),
                                              queuedAt: limiter.clock.nowMicroseconds()))
            } catch let error as StoreError {
                throw .storeFailed(error)
            } catch {
                throw .storeFailed(.io("\(error)"))
            }
        }

        var streamed = false
        if let ws = instance.websocket, ws.enabled, ws.eventList.accepts(event) {
            let frame = ws.mediaBase64 ? envelope : EventEnvelope.strippingMedia(envelope)
            streamed = stream?.publish(channel: StreamChannel.id(of: instance), envelope: frame) ?? false
            if !streamed {
                streamFailures.wrappingIncrement(ordering: .relaxed)
                logger.warning("the WebSocket fan-out did not take an event", metadata: ["instance": "\(instance.account)/\(instance.name)", "event_id": "\(id)"])
            }
        }
        return Application.success(.accepted, "Event accepted", [
            ("event", .object([("id", .string(id)), ("websocket", .bool(streamed)), ("webhooks", .number(Double(labels.count)))])),
        ])
    }

    /// A publisher names an instance of any account (SPEC §6.1), but names are unique only
    /// within an account: `account.instance` names one exactly (`.` is in neither alphabet); a
    /// bare name is accepted while exactly one account holds an instance of that name, and is
    /// refused as ambiguous when several do (never delivered to the wrong account's clients).
    func publishedInstance(_ path: String, in state: State) throws(APIError) -> State.Instance {
        if let dot = path.firstIndex(of: ".") {
            let account = String(path[..<dot]), name = String(path[path.index(after: dot)...])
            guard Names.isValidName(account), Names.isValidName(name), let instance = state.instance(account: account, name: name) else {
                throw .instanceNotFound
            }
            return instance
        }
        guard Names.isValidName(path) else { throw .instanceNotFound }
        let owners = state.owners(ofInstanceNamed: path)
        guard let owner = owners.first, let instance = state.instance(account: owner, name: path) else { throw .instanceNotFound }
        guard owners.count == 1 else { throw .refused(.conflict, "Instance name is ambiguous: publish to <account>.\(path)") }
        return instance
    }
}

extension EventList {
    /// Empty means every type (SPEC §4).
    func accepts(_ event: EventType) -> Bool { count == 0 || contains(event) }
}
