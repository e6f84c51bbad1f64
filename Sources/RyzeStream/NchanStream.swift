import Logging
import RyzeCore
import RyzeHTTP

/// The WebSocket fan-out of SPEC §6.2 as the workers see it: nginx's nchan publisher location,
/// reached on a unix socket that only the workers can reach (see `deploy/nginx-local.conf.template`
/// and `nginx.conf.example`, server `listen unix:...fanout.sock`).
///
/// - publish: `POST /pub/<channel>` with the envelope as `application/json` (nchan sends it on as
///   a text frame); nchan answers 201 when a subscriber was there, 202 when none. Both mean the
///   fan-out took the event.
/// - close: `DELETE /pub/<channel>`; nchan ends every subscriber of the channel (close code 1001,
///   reason `410 Gone`) and answers 200, or 404 when nobody was subscribed.
///
/// Best effort by contract: short timeouts, no retry, nothing kept. A request thread waits at
/// most `timeout` seconds when nginx is stuck, and at once gets `false` when it is not there.
public final class NchanStream: EventStream {
    public let socketPath: String
    public let timeout: Double
    private let clients: ClientPool
    private let logger: Logger

    /// Where nchan's publisher location is mounted on that socket; nginx's `location` must match.
    public static let publisherPrefix = "/pub/"

    public init(socketPath: String, timeout: Double = 1, logger: Logger = Logger(label: "ryze.stream")) {
        self.socketPath = socketPath
        self.timeout = timeout
        self.logger = logger
        clients = ClientPool()
    }

    public func publish(channel: String, envelope: [UInt8]) -> Bool {
        guard let response = send("POST", channel: channel, body: envelope) else { return false }
        guard response.status == 201 || response.status == 202 else {
            logger.warning("the fan-out refused an event", metadata: ["channel": "\(channel)", "status": "\(response.status)"])
            return false
        }
        return true
    }

    public func close(channel: String) { closeReporting(channel: channel) }

    /// `close`, telling whether nginx closed the channel's subscribers (or had none).
    @discardableResult
    public func closeReporting(channel: String) -> Bool {
        guard let response = send("DELETE", channel: channel, body: []) else { return false }
        // 404: nobody was subscribed, so nothing was open.
        if response.status != 200 && response.status != 404 {
            logger.warning("the fan-out did not close a channel", metadata: ["channel": "\(channel)", "status": "\(response.status)"])
            return false
        }
        return true
    }

    private func send(_ method: String, channel: String, body: [UInt8]) -> HTTPClient.Response? {
        guard let path = NchanStream.path(channel: channel) else {
            logger.error("not a channel id", metadata: ["channel": "\(channel)"])
            return nil
        }
        // The host is a placeholder: the socket is the address, and the server block on it has
        // no other name to match.
        let request = HTTPClient.Request(method: method, url: "http://ryze-fanout" + path,
                                         headers: method == "POST" ? [("Content-Type", "application/json")] : [],
                                         body: body, timeout: timeout, connectTimeout: timeout, unixSocket: socketPath)
        switch clients.with({ $0.perform(request) }) {
        case .success(let response):
            return response
        case .failure(let failure):
            logger.warning("the fan-out is unreachable", metadata: ["socket": "\(socketPath)", "method": "\(method)", "error": "\(failure)"])
            return nil
        }
    }

    /// The publisher path of a channel, or nil when it is not one `StreamChannel.id` makes:
    /// `account.instance.incarnation`, each part from `[A-Za-z0-9_-]`. Nothing else reaches the
    /// URL, so no escaping is needed and no channel can name another location.
    static func path(channel: String) -> String? {
        let parts = channel.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts.allSatisfy({ Names.isValidName($0) }) else { return nil }
        return publisherPrefix + channel
    }
}
