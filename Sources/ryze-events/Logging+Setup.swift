import ArgumentParser
import Foundation
import Logging

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
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        if let error = event.error { all["error"] = "\(error)" }
        var text = "\(Self.timestamp()) \(event.level) pid=\(getpid()) \(label): \(event.message)"
        for (k, v) in all.sorted(by: { $0.key < $1.key }) { text += " \(k)=\(v)" }
        text += "\n"
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
    }

    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var tm = tm()
        gmtime_r(&t, &tm)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                      tm.tm_hour, tm.tm_min, tm.tm_sec, Int(ts.tv_nsec / 1_000_000))
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
