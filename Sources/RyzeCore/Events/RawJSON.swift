/// Byte-level surgery on JSON that `JSONParser` has already accepted. Published events are
/// passed on exactly as the producer wrote them (numbers beyond 2^53, key order, escapes): the
/// publish path never re-serialises `data`, it cuts and splices these bytes.
///
/// Every function here assumes valid JSON (the caller parsed it first); on anything else it
/// returns nil rather than guess.
enum RawJSON {
    /// The byte range of the value at `path` (a chain of object keys from the top-level value);
    /// with duplicate keys the last one counts, as in `JSONValue`'s lookup.
    static func valueRange(_ bytes: [UInt8], path: [String]) -> Range<Int>? {
        bytes.withUnsafeBufferPointer { b in
            guard let start = skipWhitespace(b, 0), let end = skipValue(b, start) else { return nil }
            return valueRange(b, start..<end, path[...])
        }
    }

    /// `bytes` with every member named `path.last` removed from the objects at `path.dropLast()`;
    /// the bytes unchanged when there is no such object or member. Unlike `valueRange`, every
    /// duplicate along the path counts: with `{"m":{"k":1},"m":{"k":2}}` both `k` go, so that a
    /// reader whose parser keeps the first of duplicate keys finds the member gone too. Those
    /// objects are rewritten without insignificant whitespace; everything else is kept byte for
    /// byte.
    static func removingMember(_ bytes: [UInt8], path: [String]) -> [UInt8] {
        guard let key = path.last else { return bytes }
        return bytes.withUnsafeBufferPointer { b -> [UInt8] in
            guard let start = skipWhitespace(b, 0), let end = skipValue(b, start) else { return bytes }
            var objects: [(range: Range<Int>, members: [Member])] = []
            collectObjects(b, start..<end, path.dropLast(), into: &objects)
            // Ranges along one fixed-length path are disjoint (none holds another: they sit at the
            // same depth); found depth first, member order, so in ascending order.
            objects = objects.filter { $0.members.contains { $0.key == key } }
            guard !objects.isEmpty else { return bytes }
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count)
            var copied = 0
            for (object, members) in objects {
                out.append(contentsOf: b[copied..<object.lowerBound])
                out.append(UInt8(ascii: "{"))
                var first = true
                for m in members where m.key != key {
                    if !first { out.append(UInt8(ascii: ",")) }
                    first = false
                    out.append(contentsOf: b[m.keyStart..<m.keyEnd])
                    out.append(UInt8(ascii: ":"))
                    out.append(contentsOf: b[m.value])
                }
                out.append(UInt8(ascii: "}"))
                copied = object.upperBound
            }
            out.append(contentsOf: b[copied..<b.count])
            return out
        }
    }

    /// Every object reached from `value` along `path`, through every member of each name.
    private static func collectObjects(_ b: UnsafeBufferPointer<UInt8>, _ value: Range<Int>, _ path: ArraySlice<String>,
                                       into found: inout [(range: Range<Int>, members: [Member])]) {
        guard b[value.lowerBound] == UInt8(ascii: "{"), let members = members(b, value) else { return }
        guard let key = path.first else {
            found.append((value, members))
            return
        }
        for member in members where member.key == key {
            collectObjects(b, member.value, path.dropFirst(), into: &found)
        }
    }

    private struct Member {
        var key: String
        var keyStart: Int
        var keyEnd: Int
        var value: Range<Int>
    }

    private static func valueRange(_ b: UnsafeBufferPointer<UInt8>, _ value: Range<Int>, _ path: ArraySlice<String>) -> Range<Int>? {
        guard let key = path.first else { return value }
        guard b[value.lowerBound] == UInt8(ascii: "{"), let members = members(b, value),
              let member = members.last(where: { $0.key == key }) else { return nil }
        return valueRange(b, member.value, path.dropFirst())
    }

    private static func members(_ b: UnsafeBufferPointer<UInt8>, _ object: Range<Int>) -> [Member]? {
        var out: [Member] = []
        guard var i = skipWhitespace(b, object.lowerBound + 1) else { return nil }
        if b[i] == UInt8(ascii: "}") { return out }
        while true {
            guard b[i] == UInt8(ascii: "\""), let keyEnd = skipString(b, i),
                  let key = decodeKey(b, i..<keyEnd),
                  let colon = skipWhitespace(b, keyEnd), b[colon] == UInt8(ascii: ":"),
                  let valueStart = skipWhitespace(b, colon + 1), let valueEnd = skipValue(b, valueStart),
                  let next = skipWhitespace(b, valueEnd) else { return nil }
            out.append(Member(key: key, keyStart: i, keyEnd: keyEnd, value: valueStart..<valueEnd))
            if b[next] == UInt8(ascii: "}") { return out }
            guard b[next] == UInt8(ascii: ","), let after = skipWhitespace(b, next + 1) else { return nil }
            i = after
        }
    }

    /// A key as a String; one with escapes goes through the parser.
    private static func decodeKey(_ b: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> String? {
        let raw = UnsafeBufferPointer(rebasing: b[(range.lowerBound + 1)..<(range.upperBound - 1)])
        if !raw.contains(UInt8(ascii: "\\")) { return String.fromUTF8(raw) }
        guard case .string(let s)? = try? JSONParser.parse(Array(b[range])) else { return nil }
        return s
    }

    private static func skipWhitespace(_ b: UnsafeBufferPointer<UInt8>, _ from: Int) -> Int? {
        var i = from
        while i < b.count {
            switch b[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return i
            }
        }
        return nil
    }

    /// The index just past the string that starts at `i` (its opening quote).
    private static func skipString(_ b: UnsafeBufferPointer<UInt8>, _ i: Int) -> Int? {
        var j = i + 1
        while j < b.count {
            switch b[j] {
            case UInt8(ascii: "\\"): j += 2
            case UInt8(ascii: "\""): return j + 1
            default: j += 1
            }
        }
        return nil
    }

    /// The index just past the value that starts at `i`.
    private static func skipValue(_ b: UnsafeBufferPointer<UInt8>, _ i: Int) -> Int? {
        guard i < b.count else { return nil }
        switch b[i] {
        case UInt8(ascii: "\""):
            return skipString(b, i)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            var j = i
            while j < b.count {
                switch b[j] {
                case UInt8(ascii: "\""):
                    guard let end = skipString(b, j) else { return nil }
                    j = end
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { return j + 1 }
                default:
                    break
                }
                j += 1
            }
            return nil
        default:
            var j = i
            while j < b.count {
                switch b[j] {
                case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D: return j
                default: j += 1
                }
            }
            return j
        }
    }
}
