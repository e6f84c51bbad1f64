/// Field rules shared by the WebSocket and webhook bodies (SPEC §4), in one place so the two
/// endpoints (and the `websocket*` / `webhook*` fields of instance creation) cannot drift apart.
/// Every function takes the member as looked up (`nil` = the key is absent) and returns nil for
/// a value the contract calls an invalid body; JSON `null` is never the same as "absent".
enum ConfigFields {
    /// `events`: absent means all six types, stored as the empty list; otherwise an array of the
    /// six names, duplicates dropped and first order kept. Invalid: `null`, a non-array, an item
    /// that is not a string, a name that is not one of the six (matching is case-sensitive).
    static func events(_ value: JSONValue?) -> EventList? {
        guard let value else { return EventList() }
        guard case .array(let items) = value else { return nil }
        var list = EventList()
        for item in items {
            guard case .string(let s) = item, let t = EventType(name: s) else { return nil }
            // Deduplication keeps the list within EventList.capacity, which append requires.
            if !list.contains(t) { list.append(t) }
        }
        return list
    }

    /// An optional boolean: absent means `defaultValue`; anything but `true`/`false` is invalid.
    static func bool(_ value: JSONValue?, default defaultValue: Bool) -> Bool? {
        switch value {
        case nil: return defaultValue
        case .bool(let b)?: return b
        default: return nil
        }
    }
}
