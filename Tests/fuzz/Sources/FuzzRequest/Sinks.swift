@testable import RyzeCore

/// The publish route's queue, keeping nothing: what it is handed must be a whole, valid event.
final class CheckingQueue: EventQueue, @unchecked Sendable {
    func enqueue(_ event: QueuedEvent) throws {
        Oracle.require(!event.labels.isEmpty, "an event queued for no webhook")
        Oracle.requireEnvelope(event.envelope, instance: event.instance, "queued envelope")
    }
}

/// The WebSocket fan-out, keeping nothing: every frame must be a valid envelope.
final class CheckingStream: EventStream, @unchecked Sendable {
    func publish(channel: String, envelope: [UInt8]) -> Bool {
        Oracle.require(channel.split(separator: ".").count == 2, "channel \(channel) is not account.instance")
        Oracle.requireEnvelope(envelope, instance: String(channel.split(separator: ".").last ?? ""), "streamed frame")
        return true
    }

    func close(channel: String) {}
}
