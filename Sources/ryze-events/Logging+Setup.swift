import ArgumentParser
import Foundation
import Logging
import RyzeCore

/// One line per event, written with a single write() so lines from several processes sharing a
/// file (O_APPEND) never interleave. Tokens never reach it: handlers log names, not secrets.
struct LineLogHandler: LogHandler {
    let label: String
    let fd: Int32
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        // Built as bytes: at the default level every request writes an access line.
        var line: [UInt8] = []
        line.reserveCapacity(160)
        Self.appendTimestamp(to: &line)
        line.append(UInt8(ascii: " "))
        line.appendUTF8(event.level.rawValue)
        line.appendUTF8(" pid=")
        line.appendDecimal(Int(getpid()))
        line.append(UInt8(ascii: " "))
        line.appendUTF8(label)
        line.appendUTF8(": ")
        line.appendUTF8(event.message.description)
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        if let error = event.error { all["error"] = "\(error)" }
        for (k, v) in all.sorted(by: { $0.key < $1.key }) {
            line.append(UInt8(ascii: " "))
            line.appendUTF8(k)
            line.append(UInt8(ascii: "="))
            line.appendUTF8(v.description)
        }
        line.append(UInt8(ascii: "\n"))
        _ = line.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
    }

    /// `2026-11-29T03:45:24.123Z`
    static func appendTimestamp(to line: inout [UInt8]) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var tm = tm()
        gmtime_r(&t, &tm)
        func field(_ value: Int32, width: Int, then separator: Character) {
            line.appendDecimal(Int(value), width: width)
            line.append(separator.asciiValue!)
        }
        field(tm.tm_year + 1900, width: 4, then: "-")
        field(tm.tm_mon + 1, width: 2, then: "-")
        field(tm.tm_mday, width: 2, then: "T")
        field(tm.tm_hour, width: 2, then: ":")
        field(tm.tm_min, width: 2, then: ":")
        field(tm.tm_sec, width: 2, then: ".")
        field(Int32(ts.tv_nsec / 1_000_000), width: 3, then: "Z")
    }
}

enum LogSetup {
    /// Standard error by default (the journal under systemd); `--log-file` for spawn-fcgi, whose
    /// children's standard error is /dev/null.
    static func bootstrap(file: String?, level: Logger.Level) throws {
        var fd: Int32 = 2
        if let file {
            fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw Fatal("cannot open log file \(file): \(String(cString: strerror(errno)))") }
        }
        let target = fd
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, fd: target, logLevel: level) }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
