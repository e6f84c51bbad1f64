/// How fuzz-request reads its input: up to `maxRequests` requests, each as text a person can
/// write a seed in and libFuzzer can mutate line by line.
///
///     POST /api/events/webhook/shop?label=crm      first line: method, one space, REQUEST_URI
///     HTTP_TOKEN=$A                                 then FastCGI parameters, NAME=value, raw bytes
///     REMOTE_ADDR=10.1.2.3
///                                                   an empty line, then the body (every byte to
///     {"label":"crm","enabled":true}                the separator or the end)
///     ~~~                                           separator line: the next request
///
/// - A first line without a space is the method alone, with no REQUEST_URI (so the builder's
///   DOCUMENT_URI and `/` fallbacks are reached too).
/// - `$A`, `$B`, `$I`, `$J`, `$P` in a value stand for the tokens of `FuzzDeployment` (account
///   acme, account other, instance acme/shop, instance acme/desk, the publisher), so that
///   mutations reach the handlers behind authentication.
/// - Without a CONTENT_LENGTH line it is the body's length; with one, the request is what the
///   adapter would make of it: a declared length over the largest body is "too large" (the body
///   dropped), a body shorter than declared never reaches the application (the adapter drops the
///   connection), a longer one is cut to the declared length.
/// - Without a REMOTE_ADDR line it is 127.0.0.1.
struct RequestInput {
    var parameters: [(name: [UInt8], value: [UInt8])] = []
    var body: [UInt8] = []

    static let maxRequests = 8
    static let separator = Array("\n~~~\n".utf8)

    static func parse(_ input: UnsafeBufferPointer<UInt8>, tokens: [UInt8: [UInt8]]) -> [RequestInput] {
        var out: [RequestInput] = []
        for part in split(input[...], on: separator).prefix(maxRequests) {
            out.append(request(part, tokens: tokens))
        }
        return out
    }

    private static func request(_ bytes: Slice<UnsafeBufferPointer<UInt8>>, tokens: [UInt8: [UInt8]]) -> RequestInput {
        var r = RequestInput()
        let headEnd = firstRange(of: [0x0A, 0x0A], in: bytes)
        let head = bytes[bytes.startIndex..<(headEnd?.lowerBound ?? bytes.endIndex)]
        if let headEnd { r.body = Array(bytes[headEnd.upperBound..<bytes.endIndex]) }
        var lines = head.split(separator: 0x0A, omittingEmptySubsequences: false)[...]
        if let first = lines.popFirst() {
            if let space = first.firstIndex(of: 0x20) {
                r.parameters.append((Array("REQUEST_METHOD".utf8), Array(first[first.startIndex..<space])))
                r.parameters.append((Array("REQUEST_URI".utf8), substitute(first[(space + 1)...], tokens)))
            } else {
                r.parameters.append((Array("REQUEST_METHOD".utf8), Array(first)))
            }
        }
        for line in lines {
            guard let eq = line.firstIndex(of: UInt8(ascii: "=")) else { continue }
            r.parameters.append((Array(line[line.startIndex..<eq]), substitute(line[(eq + 1)...], tokens)))
        }
        if !r.parameters.contains(where: { $0.name == Array("CONTENT_LENGTH".utf8) }) {
            r.parameters.append((Array("CONTENT_LENGTH".utf8), Array(String(r.body.count).utf8)))
        }
        if !r.parameters.contains(where: { $0.name == Array("REMOTE_ADDR".utf8) }) {
            r.parameters.append((Array("REMOTE_ADDR".utf8), Array("127.0.0.1".utf8)))
        }
        return r
    }

    /// `$X` replaced by token X where one is defined; every other byte as it is.
    private static func substitute<C: Collection<UInt8>>(_ value: C, _ tokens: [UInt8: [UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        var dollar = false
        for c in value {
            if dollar, let token = tokens[c] {
                out.removeLast()
                out.append(contentsOf: token)
                dollar = false
                continue
            }
            out.append(c)
            dollar = c == UInt8(ascii: "$")
        }
        return out
    }

    private static func split(_ bytes: Slice<UnsafeBufferPointer<UInt8>>, on sep: [UInt8]) -> [Slice<UnsafeBufferPointer<UInt8>>] {
        var parts: [Slice<UnsafeBufferPointer<UInt8>>] = []
        var rest = bytes
        while let r = firstRange(of: sep, in: rest) {
            parts.append(rest[rest.startIndex..<r.lowerBound])
            rest = rest[r.upperBound..<rest.endIndex]
        }
        parts.append(rest)
        return parts
    }

    private static func firstRange(of needle: [UInt8], in hay: Slice<UnsafeBufferPointer<UInt8>>) -> Range<Int>? {
        guard hay.count >= needle.count else { return nil }
        var i = hay.startIndex
        while i + needle.count <= hay.endIndex {
            if hay[i] == needle[0] && hay[i..<(i + needle.count)].elementsEqual(needle) { return i..<(i + needle.count) }
            i += 1
        }
        return nil
    }
}
