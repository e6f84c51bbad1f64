import RyzeCore
import CLibFuzzer
#if canImport(Glibc)
import Glibc
#endif

/// fuzz-json: JSONParser over arbitrary bytes. Beyond no crash, leak or hang (deep nesting
/// included: the parser must refuse past JSONParser.maxDepth, never overflow the stack): what
/// parses serialises to JSON that parses back to the same value.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let value = try? JSONParser.parse(bytes) else { return 0 }
    let written = value.serialized()
    guard let again = try? JSONParser.parse(written) else {
        fatalError("serialized() wrote what the parser refuses: \(String(decoding: written.prefix(300), as: UTF8.self))")
    }
    if again != value { fatalError("round trip changed the value: \(String(decoding: written.prefix(300), as: UTF8.self))") }
    return 0
}

@main enum FuzzJSONMain {
    static func main() { exit(ryze_run_fuzzer(CommandLine.argc, CommandLine.unsafeArgv, fuzzJSON)) }
}
