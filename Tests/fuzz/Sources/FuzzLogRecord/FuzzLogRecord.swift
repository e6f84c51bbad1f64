import CLibFuzzer
import LogFuzzing
import RyzeCore
#if canImport(Glibc)
import Glibc
#endif

/// fuzz-logrecord: `events.log`'s readers (`LogFuzzing` says what is checked); a decoded record
/// is equal to itself re-encoded and decoded, and the records found are folded into a `State`,
/// as a replay does.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLogRecord(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var state = State()
    LogFuzzing.run(UnsafeBufferPointer(start: data, count: size), kind: .events, as: LogRecord.self, same: ==) { state.apply($0) }
    return 0
}

@main enum FuzzLogRecordMain {
    static func main() { exit(ryze_run_fuzzer(CommandLine.argc, CommandLine.unsafeArgv, fuzzLogRecord)) }
}
