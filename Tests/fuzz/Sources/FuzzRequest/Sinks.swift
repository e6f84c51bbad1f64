@testable import RyzeCore

/// The WebSocket fan-out, keeping nothing: every frame must be a valid envelope.
final class CheckingStream: EventStream, @unchecked Sendable {
    func publish(channel: String, envelope: [UInt8]) -> Bool {
        // `StreamChannel`: account.instance.incarnation, names from `[A-Za-z0-9_-]`.
        let parts = channel.split(separator: ".", omittingEmptySubsequences: false)
        Oracle.require(parts.count == 3 && parts.allSatisfy { !$0.isEmpty }, "channel \(channel) is not account.instance.incarnation")
        Oracle.requireEnvelope(envelope, instance: String(parts[1]), "streamed frame")
        return true
    }

    func close(channel: String) {}
}
