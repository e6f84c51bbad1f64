import Foundation
import Testing
@testable import RyzeDeliver

/// One deliverer per data directory, and the identity its leases carry with `--store`.
struct DeliverLockTests {
    @Test func aSecondDelivererIsRefusedAndTheIdentityOutlivesTheProcess() throws {
        let dir = NSTemporaryDirectory() + "ryze-lock-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var first: DeliverLock? = try DeliverLock(directory: dir)
        let identity = first!.identity
        #expect(identity.count == 32 && identity.allSatisfy(\.isHexDigit))
        #expect(throws: DeliverLock.Held.self) { try DeliverLock(directory: dir) }
        first = nil
        // The next deliverer of this directory: the same identity.
        #expect(try DeliverLock(directory: dir).identity == identity)
        // Another directory, another identity; a file from before identities gets one.
        let other = dir + "/old"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: other + "/deliver.lock", contents: Data())
        let made = try DeliverLock(directory: other).identity
        #expect(made != identity && made.count == 32)
        #expect(try String(contentsOfFile: other + "/deliver.lock", encoding: .utf8) == made + "\n")
    }
}
