@testable import RyzeCore
import CLibFuzzer
#if canImport(Glibc)
import Glibc
#endif

/// fuzz-rawjson: the byte surgery of the publish path, over inputs JSONParser accepts (its stated
/// precondition), each checked against the same operation done on the parsed tree:
///
/// - `RawJSON.valueRange(bytes, ["data"])` is the bytes of `value["data"]` (last duplicate wins);
/// - `EventEnvelope.strippingMedia(bytes)` parses to the tree with every `base64` member removed
///   from every object at `data.message.media`, along every duplicate key; it returns the input
///   unchanged, byte for byte, when there is nothing to remove;
/// - the envelope the publish route builds around the input as `data` parses, and holds it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRawJSON(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let value = try? JSONParser.parse(bytes) else { return 0 }
    let text = { String(decoding: bytes.prefix(300), as: UTF8.self) }

    for path in [["data"], ["data", "message"], ["data", "message", "media"]] {
        let expected = lookUp(value, path[...])
        let range = RawJSON.valueRange(bytes, path: path)
        if expected == nil {
            if range != nil { fatalError("valueRange found \(path) that the tree has not: \(text())") }
            continue
        }
        guard let range, let found = try? JSONParser.parse(Array(bytes[range])), found == expected else {
            fatalError("valueRange \(path) disagrees with the tree: \(text())")
        }
    }

    let stripped = EventEnvelope.strippingMedia(bytes)
    let expected = removing(value, ["data", "message", "media"][...], key: "base64")
    guard let after = try? JSONParser.parse(stripped) else {
        fatalError("strippingMedia wrote invalid JSON: \(String(decoding: stripped.prefix(300), as: UTF8.self))")
    }
    if after != expected { fatalError("strippingMedia disagrees with the tree: \(text())") }
    if expected == value && stripped != bytes { fatalError("strippingMedia changed bytes with nothing to remove: \(text())") }

    // The envelope nests `data` one level down; on the publish route `data` already sits one
    // level down in the body, so only a value with a level to spare is a `data` it can carry.
    if case .object = value, depth(value) < JSONParser.maxDepth {
        let envelope = EventEnvelope.make(event: .messageExchange, data: bytes[...], baseURL: "https://api.example", instance: "shop")
        guard let e = try? JSONParser.parse(envelope), e["data"] == value else { fatalError("envelope around \(text())") }
    }
    return 0
}

/// The member at `path`, the last of duplicate keys at each step, as JSONValue's subscript.
func lookUp(_ v: JSONValue, _ path: ArraySlice<String>) -> JSONValue? {
    guard let key = path.first else { return v }
    guard let next = v[key] else { return nil }
    return lookUp(next, path.dropFirst())
}

/// `v` with every member `key` removed from every object reached along `path`, through every
/// duplicate of each step.
func removing(_ v: JSONValue, _ path: ArraySlice<String>, key: String) -> JSONValue {
    guard case .object(let members) = v else { return v }
    guard let step = path.first else { return .object(members.filter { $0.0 != key }) }
    return .object(members.map { ($0.0, $0.0 == step ? removing($0.1, path.dropFirst(), key: key) : $0.1) })
}

/// Arrays and objects nested in one another, as JSONParser.maxDepth counts them.
func depth(_ v: JSONValue) -> Int {
    switch v {
    case .array(let items): return 1 + (items.map(depth).max() ?? 0)
    case .object(let members): return 1 + (members.map { depth($0.1) }.max() ?? 0)
    default: return 0
    }
}

@main enum FuzzRawJSONMain {
    static func main() { exit(ryze_run_fuzzer(CommandLine.argc, CommandLine.unsafeArgv, fuzzRawJSON)) }
}
