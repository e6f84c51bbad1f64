import Foundation
import RyzeCore
import CLibFuzzer
#if canImport(Glibc)
import Glibc
#endif

/// fuzz-webhookurl: `WebhookURL.validate` over arbitrary bytes (as the String a JSON body would
/// give it). Beyond no crash, leak or hang, a URL it accepts must
///
/// - come back exactly as given, within 2,048 bytes, with an `http`/`https` scheme;
/// - hold only printable ASCII other than the characters RFC 3986 excludes, and no `@` before the
///   path (no userinfo), no `#`, no backslash;
/// - be read the same way by a parser nobody here wrote: Foundation's `URL` must accept it, see an
///   http(s) scheme, no user or password, and the same host (case aside; IPv6 without brackets).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWebhookURL(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let accepted = WebhookURL.validate(text) else { return 0 }
    func fail(_ why: String) -> Never { fatalError("accepted \(text.debugDescription): \(why)") }
    if accepted != text { fail("not returned as given") }
    let u = Array(text.utf8)
    if u.count > WebhookURL.maxBytes { fail("longer than \(WebhookURL.maxBytes) bytes") }
    let lower = text.lowercased()
    guard lower.hasPrefix("http://") || lower.hasPrefix("https://") else { fail("scheme") }
    let excluded = Set(#" "<>\^`{|}#"#.utf8)
    if u.contains(where: { $0 <= 0x20 || $0 >= 0x7F || excluded.contains($0) }) { fail("a byte RFC 3986 excludes") }
    let afterScheme = text[text.range(of: "://")!.upperBound...]
    let authority = afterScheme.prefix { $0 != "/" && $0 != "?" }
    if authority.contains("@") { fail("userinfo") }
    if authority.isEmpty { fail("no host") }

    guard let url = URL(string: text) else { fail("Foundation's URL refuses it") }
    guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https" else { fail("Foundation sees scheme \(url.scheme ?? "none")") }
    if url.user != nil || url.password != nil { fail("Foundation sees userinfo") }
    var ours = String(authority)
    if ours.hasPrefix("[") {
        ours = String(ours.dropFirst().prefix { $0 != "]" })
    } else if let colon = ours.firstIndex(of: ":") {
        ours = String(ours[..<colon])
    }
    guard let host = url.host else { fail("Foundation sees no host") }
    if host.lowercased() != ours.lowercased() { fail("Foundation sees host \(host.debugDescription), we \(ours.debugDescription)") }
    return 0
}

@main enum FuzzWebhookURLMain {
    static func main() { exit(ryze_run_fuzzer(CommandLine.argc, CommandLine.unsafeArgv, fuzzWebhookURL)) }
}
