@testable import RyzeCore

/// The WebSocket fan-out, keeping nothing: every frame must be a valid envelope.
final class CheckingStream: EventStream, @unchecked Sendable {
    func publish(channel: String, envelope: [UInt8]) -> Bool {
        Oracle.require(channel.split(separator: ".").count == 2, "channel \(channel) is not account.instance")
        Oracle.requireEnvelope(envelope, instance: String(channel.split(separator: ".").last ?? ""), "streamed frame")
        return true
    }

    func close(channel: String) {}
}
