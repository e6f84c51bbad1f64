@testable import RyzeCore

/// What must hold for every request, whatever its bytes; a violation stops the process, which
/// libFuzzer reports as a crash and saves the input of.
enum Oracle {
    static func require(_ condition: Bool, _ what: @autoclosure () -> String) {
        if !condition { fatalError("fuzz-request invariant: \(what())") }
    }

    /// SPEC §1 and the contract's 500s: every answer is JSON (aside: a 204, the Prometheus status
    /// page, the stream gate's empty 200 that hands the connection to nginx's internal nchan
    /// location, and the OpenAPI document, exactly its bytes), an error is exactly the envelope,
    /// and no input makes the API fail (a 5xx is a bug here: the store is healthy and the queue
    /// always takes the event). SPEC §3: every API answer carries the rate-limit headers. No
    /// header carries a line break (response splitting).
    static func check(_ r: HTTPResponse, for request: HTTPRequest, statusPath: String) {
        let what = "\(request.method) \(request.path)?\(request.query) -> \(r.status.code) \(String(decoding: r.body.prefix(200), as: UTF8.self))"
        require(r.status.code < 500, "a 5xx: \(what)")
        if r.contentType == "application/json" {
            guard let json = try? JSONParser.parse(r.body) else { fatalError("fuzz-request invariant: not JSON: \(what)") }
            if r.status.code >= 400 {
                guard case .object(let top) = json, top.count == 2, top[0].0 == "success", top[0].1 == .bool(false),
                      top[1].0 == "error", case .object(let error) = top[1].1, error.count == 1, error[0].0 == "message",
                      case .string = error[0].1 else { fatalError("fuzz-request invariant: not the error envelope: \(what)") }
            }
        } else if r.status.code == 200, request.path == "/api/openapi.yaml" {
            require(request.method == "GET" && r.contentType == OpenAPIDocument.contentType && r.body == OpenAPIDocument.bytes,
                    "the OpenAPI document: \(what)")
        } else if r.status.code == 200, request.path.hasPrefix("/ws/") {
            let redirect = r.headers.first { $0.0 == "X-Accel-Redirect" }?.1 ?? ""
            require(r.body.isEmpty && redirect.hasPrefix(StreamGate.internalLocation), "the stream gate's answer: \(what)")
        } else {
            require(r.status.code == 204 || request.path == statusPath, "no JSON: \(what)")
        }
        require(r.rateLimit != nil || request.path == statusPath, "no rate-limit headers: \(what)")
        for (name, value) in r.headers {
            require(!(name + value).utf8.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0 }, "a line break in header \(name): \(what)")
        }
    }

    /// SPEC §6's envelope: JSON, exactly `event`, `data` (an object), `instanceData`.
    static func requireEnvelope(_ bytes: [UInt8], instance: String, _ what: String) {
        guard let v = try? JSONParser.parse(bytes), case .object(let top) = v else {
            fatalError("fuzz-request invariant: \(what) is not JSON: \(String(decoding: bytes.prefix(300), as: UTF8.self))")
        }
        require(top.map(\.0) == ["event", "data", "instanceData"], "\(what) keys \(top.map(\.0))")
        if case .object = top[1].1 {} else { require(false, "\(what): data is not an object") }
        require(v["instanceData"]?["instance"] == .string(instance), "\(what): instanceData.instance")
    }
}
