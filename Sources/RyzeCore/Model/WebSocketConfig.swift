/// The six event types of the RyzeAPI Events module. Raw values are the log's encoding: never renumber.
public enum EventType: UInt8, CaseIterable, Sendable {
    case messageExchange = 1
    case messageStatus = 2
    case callUpdate = 3
    case groupFlow = 4
    case instanceState = 5
    case labelUpdate = 6

    public var name: String { nameLiteral.description }

    /// The name as a literal, for writers that copy bytes without touching a String.
    var nameLiteral: StaticString {
        switch self {
        case .messageExchange: return "message.exchange"
        case .messageStatus: return "message.status"
        case .callUpdate: return "call.update"
        case .groupFlow: return "group.flow"
        case .instanceState: return "instance.state"
        case .labelUpdate: return "label.update"
        }
    }

    public init?(name: String) {
        guard let t = EventType.allCases.first(where: { $0.name == name }) else { return nil }
        self = t
    }
}

/// Up to six distinct event types in their given order, packed into one word: a configuration
/// then needs no heap allocation, which matters when a million of them are replayed.
public struct EventList: Equatable, Sendable, Sequence {
    public static let capacity = 6
    private var packed: UInt32 = 0   // 3 bits per event, first event lowest; count in bits 24...

    public init() {}

    public var count: Int { Int(packed >> 24) }

    public func contains(_ e: EventType) -> Bool { contains(where: { $0 == e }) }

    mutating func append(_ e: EventType) {
        precondition(count < EventList.capacity)
        packed |= UInt32(e.rawValue) << (3 * UInt32(count))
        packed = (packed & 0x00FF_FFFF) | UInt32(count + 1) << 24
    }

    public struct Iterator: IteratorProtocol {
        var packed: UInt32
        var index = 0
        public mutating func next() -> EventType? {
            guard index < Int(packed >> 24) else { return nil }
            defer { index += 1 }
            return EventType(rawValue: UInt8((packed >> (3 * UInt32(index))) & 7))
        }
    }

    public func makeIterator() -> Iterator { Iterator(packed: packed) }
}

/// An instance's single WebSocket configuration, as stored and as returned.
public struct WebSocketConfig: Equatable, Sendable {
    public var enabled: Bool
    /// Empty means "all six types": stored and returned as `[]`.
    public var eventList: EventList
    public var mediaBase64: Bool

    public var events: [EventType] { Array(eventList) }

    public init(enabled: Bool, events: [EventType] = [], mediaBase64: Bool = false) {
        var list = EventList()
        for e in events where !list.contains(e) { list.append(e) }   // duplicates dropped, first order kept
        self.init(enabled: enabled, eventList: list, mediaBase64: mediaBase64)
    }

    public init(enabled: Bool, eventList: EventList, mediaBase64: Bool) {
        // A disabled configuration carries nothing else, whatever was sent.
        self.enabled = enabled
        self.eventList = enabled ? eventList : EventList()
        self.mediaBase64 = enabled ? mediaBase64 : false
    }

    public static let unconfigured = WebSocketConfig(enabled: false)

    /// `{"success":true,"message":MESSAGE,"websocket":{...}}`, for the two WebSocket endpoints.
    /// The message is a literal with nothing to escape, so it is copied as it is; everything is
    /// written on the stack and copied into an array of the exact size. (Not
    /// `Array(unsafeUninitializedCapacity:)`: this toolchain leaves that unspecialized, a runtime
    /// metadata lookup of ~530 instructions per call, where copying a buffer is specialized.)
    public static func successBody(message: StaticString, config: WebSocketConfig) -> [UInt8] {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64 + message.utf8CodeUnitCount + maxJSONBytes) { buffer in
            var w = LiteralWriter(buffer)
            w.write(#"{"success":true,"message":""#)
            w.write(message)
            w.write(#"","websocket":"#)
            config.write(to: &w)
            w.write("}")
            return Array(UnsafeBufferPointer(rebasing: buffer[..<w.count]))
        }
    }

    /// Longer than any configuration's JSON: six event names of at most 16 bytes, quoted.
    static let maxJSONBytes = 64 + EventList.capacity * 20

    /// The configuration's JSON object, written directly: this is the body of the hottest response.
    private func write(to w: inout LiteralWriter) {
        w.write(enabled ? #"{"enabled":true,"events":["# : #"{"enabled":false,"events":["#)
        var first = true
        for e in eventList {
            w.write(first ? "\"" : ",\"")
            first = false
            w.write(e.nameLiteral)
            w.write("\"")
        }
        w.write(mediaBase64 ? #"],"mediaBase64":true}"# : #"],"mediaBase64":false}"#)
    }

    /// The same object as a JSON value, for answers built as JSONValue trees (list, create).
    /// Parsed from what `write(to:)` writes, so the object's shape has one source.
    public var json: JSONValue {
        let bytes = [UInt8](unsafeUninitializedCapacity: WebSocketConfig.maxJSONBytes) { buffer, count in
            var w = LiteralWriter(buffer)
            write(to: &w)
            count = w.count
        }
        // Our own writer's output: failing to parse it is a bug, not an input error.
        guard let value = try? JSONParser.parse(bytes) else { preconditionFailure("WebSocketConfig wrote invalid JSON") }
        return value
    }

    /// Validates the body of `POST /api/events/websocket/:instance` (or the `websocket*` fields of
    /// instance creation): nil for anything the contract calls an invalid body.
    public static func parse(enabled: JSONValue?, events: JSONValue?, mediaBase64: JSONValue?) -> WebSocketConfig? {
        guard case .bool(let isEnabled)? = enabled,
              let list = ConfigFields.events(events),
              let media = ConfigFields.bool(mediaBase64, default: false) else { return nil }
        return WebSocketConfig(enabled: isEnabled, eventList: list, mediaBase64: media)
    }

    public static func parse(body: JSONValue) -> WebSocketConfig? {
        guard case .object = body else { return nil }
        return parse(enabled: body["enabled"], events: body["events"], mediaBase64: body["mediaBase64"])
    }
}
