@testable import RyzeCore
#if canImport(Glibc)
import Glibc
import CLibFuzzer
#endif

/// fuzz-request: the in-process request path. Each input is up to eight requests (see
/// `RequestInput`), built from raw FastCGI parameters exactly as the adapter builds them (the
/// environment scan, `HTTPRequest(parameters:)`, the adapter's body rules) and answered in turn by
/// the whole `Application` (pipeline, router, every handler, the store) over a fresh data
/// directory (`FuzzDeployment`). `Oracle` says what every answer must be.
let deployment: FuzzDeployment = {
    let d = FuzzDeployment()
    atexit { deployment.removeEverything() }
    return d
}()

/// RYZE_FUZZ_VERBOSE=1 prints each request and its answer: for replaying an input by hand
/// (`deploy/fuzz.sh request -- FILE`) and for checking that the seeds reach what they should.
let verbose = getenv("RYZE_FUZZ_VERBOSE") != nil

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequest(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let requests = RequestInput.parse(UnsafeBufferPointer(start: data, count: size), tokens: FuzzDeployment.tokens)
    deployment.run { app in
        for input in requests {
            guard let request = makeRequest(input, largestBody: app.configuration.largestBodyBytes) else { continue }
            deployment.statistics.requestStarted(thread: 0)
            let response = app.respond(to: request)
            deployment.statistics.requestFinished(thread: 0)
            Oracle.check(response, for: request, statusPath: app.configuration.statusPath ?? "")
            if verbose {
                print("\(request.method) \(request.path)?\(request.query) -> \(response.status.code) \(String(decoding: response.body.prefix(160), as: UTF8.self))")
            }
        }
    }
    return 0
}

/// The request the adapter would hand the application, or nil where the adapter would drop the
/// connection instead (a body shorter than its CONTENT_LENGTH). The parameters are laid out as
/// libfcgi lays them out: NUL-terminated `NAME=value` strings in a NULL-terminated array.
func makeRequest(_ input: RequestInput, largestBody: Int) -> HTTPRequest? {
    let strings: [UnsafeMutablePointer<CChar>?] = input.parameters.map { p in
        let bytes = p.name + [UInt8(ascii: "=")] + p.value + [0]
        let s = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
        bytes.withUnsafeBytes { s.initialize(from: $0.bindMemory(to: CChar.self).baseAddress!, count: bytes.count) }
        return s
    } + [nil]
    defer { for s in strings { s?.deallocate() } }
    return strings.withUnsafeBufferPointer { env -> HTTPRequest? in
        let parameters = RequestParameters(environment: env.baseAddress)
        let length = parameters.contentLength
        if length > largestBody { return HTTPRequest(parameters: parameters, body: [], bodyTooLarge: true) }
        guard input.body.count >= length else { return nil }
        return HTTPRequest(parameters: parameters, body: Array(input.body.prefix(length)))
    }
}

@main enum FuzzRequestMain {
    static func main() { exit(ryze_run_fuzzer(CommandLine.argc, CommandLine.unsafeArgv, fuzzRequest)) }
}
