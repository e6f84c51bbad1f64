#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import RyzeCore

/// The pipeline's cross-cutting rules, in process.
@Suite struct PipelineTests {
    /// Replaces the log with a file this version cannot read and tells every process it changed:
    /// the next refresh fails, as it would after damage that only a restart can report.
    func breakTheLog(_ t: TestApp) throws {
        let path = t.store.logPath
        let tmp = path + ".broken"
        try Data("not a log at all".utf8).write(to: URL(fileURLWithPath: tmp))
        #expect(rename(tmp, path) == 0)
        try ChangeCounter(path: t.dir.path + "/events.seq").bump()
    }

    @Test func everyRouteRefusesAStateThatCouldNotCatchUp() throws {
        let t = try TestApp()
        _ = try t.createInstance("a")
        try breakTheLog(t)
        let get = t.call("GET", "/api/events/getWebsocket/a", token: t.accountToken)
        #expect(get.status == .internalServerError)
        #expect(get.message == "Failed to get websocket configuration")
        #expect(t.call("GET", "/api/instance/list", token: t.accountToken).message == "Failed to list instances")
        #expect(t.call("POST", "/api/events/websocket/a", token: t.accountToken, body: #"{"enabled":true}"#).message
                == "Failed to save websocket configuration")
        // The cause is short and names no file (the details go to the log).
        let delete = t.call("DELETE", "/api/instance/delete/a", token: t.accountToken)
        #expect(delete.message == "Failed to delete instance: storage damaged")
        // Unknown routes and the rate-limit headers are unaffected.
        let unknown = t.call("GET", "/nope", token: t.accountToken)
        #expect(unknown.status == .notFound && unknown.rateLimit != nil)
    }

    @Test func aStoreFailureIsAnsweredWithoutPaths() {
        let failure = Endpoint.StoreFailure(message: "Failed to delete instance", withCause: true)
        let text = failure.text(for: .io("append to /secret/path/events.log failed: No space left on device"))
        #expect(text == "Failed to delete instance: storage error")
        #expect(!text.contains("/"))
    }

    @Test func aTokenRevokedAfterAuthenticationWritesNothing() throws {
        let t = try TestApp()
        _ = try t.createInstance("a")
        let records = t.store.stats.records
        let context = RequestContext(principal: .account("acme"), digest: TokenDigest(of: t.accountToken), parameters: .init())
        try Accounts.disable(in: t.store, name: "acme")
        #expect(throws: APIError.self) {
            try t.app.write(context) { _ throws(APIError) -> (LogRecord?, Void) in
                (.instanceDeleted(account: "acme", name: "a"), ())
            }
        }
        #expect(t.store.stats.records == records + 1)   // only the disable
    }
}
