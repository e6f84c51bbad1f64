import Foundation
import RyzeCore

/// Read-only checks of a log file, and the one deliberate destructive fix (`log repair`).
enum LogInspector {
    enum Report {
        case ok(records: Int, bytes: Int)
        case damaged(records: Int, offset: Int, reason: String, validAfter: Int?, size: Int)
        case unreadable(String)
    }

    static func inspect(path: String) -> Report {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .unreadable("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var header = [UInt8](repeating: 0, count: LogFormat.headerSize)
        let n = header.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, 0) }
        guard n == LogFormat.headerSize, LogFormat.isValidHeader(header[...]) else {
            return .unreadable("\(path): not a ryze-events log (bad header or unsupported version)")
        }
        var st = stat()
        fstat(fd, &st)
        let size = Int(st.st_size)
        do {
            let result = try LogFormat.scan(fd: fd, from: LogFormat.headerSize) { _, _, _ in }
            switch result.stop {
            case .clean:
                return .ok(records: result.records, bytes: size)
            case .incomplete:
                let later = try LogFormat.validRecordExists(fd: fd, after: result.end, fileSize: size)
                return .damaged(records: result.records, offset: result.end, reason: "incomplete record", validAfter: later, size: size)
            case .damaged(let reason):
                let later = try LogFormat.validRecordExists(fd: fd, after: result.end, fileSize: size)
                return .damaged(records: result.records, offset: result.end, reason: reason, validAfter: later, size: size)
            }
        } catch {
            return .unreadable("\(error)")
        }
    }

    static func repair(path: String) throws -> String {
        switch inspect(path: path) {
        case .unreadable(let reason):
            throw Fatal(reason)
        case .ok(let records, _):
            return "nothing to repair: \(records) valid records"
        case let .damaged(records, offset, reason, _, size):
            let backup = path + ".bak-\(Int(Date().timeIntervalSince1970))"
            try FileManager.default.copyItem(atPath: path, toPath: backup)
            let dropped = countRecords(path: path, from: offset, size: size)
            let fd = open(path, O_RDWR | O_CLOEXEC)
            guard fd >= 0, ftruncate(fd, off_t(offset)) == 0, fsync(fd) == 0 else {
                throw Fatal("cannot truncate \(path): \(String(cString: strerror(errno)))")
            }
            close(fd)
            return "cut \(path) at offset \(offset) (\(reason)): kept \(records) records, dropped \(size - offset) bytes holding \(dropped) valid-looking records; backup at \(backup)"
        }
    }

    /// Valid frames found after the damage (resynchronising past bad bytes), for the repair report.
    static func countRecords(path: String, from offset: Int, size: Int) -> Int {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var count = 0
        var at = offset
        while let next = try? LogFormat.validRecordExists(fd: fd, after: at, fileSize: size) {
            guard let r = try? LogFormat.scan(fd: fd, from: next, { _, _, _ in }) else { break }
            count += r.records
            if r.stop == .clean { break }
            at = r.end
        }
        return count
    }

    static func describe(_ record: LogRecord) -> String {
        func ws(_ c: WebSocketConfig?) -> String {
            guard let c else { return "websocket=null" }
            return "websocket={enabled:\(c.enabled) events:[\(c.events.map(\.name).joined(separator: ","))] mediaBase64:\(c.mediaBase64)}"
        }
        switch record {
        case let .accountCreated(name, token, quota): return "account.created name=\(name) token=\(token) quota=\(quota)"
        case let .accountDisabled(name): return "account.disabled name=\(name)"
        case let .instanceCreated(account, name, token, w): return "instance.created account=\(account) name=\(name) token=\(token) \(ws(w))"
        case let .instanceDeleted(account, name): return "instance.deleted account=\(account) name=\(name)"
        case let .websocketSaved(account, name, w): return "websocket.saved account=\(account) name=\(name) \(ws(w))"
        }
    }
}
