@testable import RyzeCore

/// The WebSocket fan-out, keeping nothing: every frame must be a valid envelope.
final class CheckingStream: EventStream, @unchecked Sendable {
    func publish(channel: String, envelope: [UInt8]) -> Bool {
        let parts = channel.split(separator: ".", omittingEmptySubsequences: false)
        Oracle.require(parts.count == 3 && Names.isValidName(parts[0]) && Names.isValidName(parts[1])
                       && parts[2].utf8.count == 16 && parts[2].utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) },
                       "channel \(channel) is not account.instance.<16 hex digits of the instance's token digest>")
        Oracle.requireEnvelope(envelope, instance: String(parts[1]), "streamed frame")
        return true
    }

    func close(channel: String) {}
}
