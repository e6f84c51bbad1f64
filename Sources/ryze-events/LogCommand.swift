import ArgumentParser
import Foundation
import RyzeCore

struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Check, print, compact and repair the append-only log.",
        subcommands: [Verify.self, Dump.self, Compact.self, Repair.self]
    )

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the header and every record's checksum; exit non-zero on any damage. Changes nothing."
        )

        @OptionGroup var data: DataDirectory

        func run() throws {
            let report = LogInspector.inspect(path: data.path + "/" + Store.logName)
            switch report {
            case .unreadable(let reason):
                fail(reason)
            case let .ok(records, bytes):
                print("ok: \(records) records, \(bytes) bytes")
            case let .damaged(records, offset, reason, validAfter, size):
                let path = data.path + "/" + Store.logName
                if let validAfter {
                    fail("\(path): damaged at offset \(offset) (\(reason)) after \(records) valid records; valid records follow at offset \(validAfter): run `ryze-events log repair` to cut the log there (a backup is kept)")
                }
                fail("\(path): torn tail at offset \(offset) (\(reason)), \(size - offset) bytes after \(records) valid records; the next worker start or write cuts it")
            }
        }
    }

    struct Dump: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print every record, one per line: offset, type, fields. Tokens appear only as digest prefixes.")

        @OptionGroup var data: DataDirectory

        func run() throws {
            let path = data.path + "/" + Store.logName
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { fail("cannot open \(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            do {
                let result = try LogFormat.scan(fd: fd, from: LogFormat.headerSize) { record, offset, _ in
                    print("\(offset)\t\(LogInspector.describe(record))")
                }
                if result.stop != .clean { fail("stopped at offset \(result.end): \(result.stop)") }
            } catch {
                fail("\(error)")
            }
        }
    }

    struct Compact: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rewrite the log as the current state (safe while workers run; they switch to the new file)."
        )

        @OptionGroup var data: DataDirectory

        func run() throws {
            let store = openStore(data)
            do {
                let r = try store.compact()
                print("compacted: \(r.recordsBefore) records (\(r.bytesBefore) bytes) -> \(r.recordsAfter) records (\(r.bytesAfter) bytes)")
            } catch {
                fail("\(error)")
            }
        }
    }

    struct Repair: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cut the log at its first damaged record, keeping a backup copy beside it.",
            discussion: "Stop the workers first: records after the damage are dropped, and workers must replay the result."
        )

        @OptionGroup var data: DataDirectory

        func run() throws {
            let path = data.path + "/" + Store.logName
            do {
                let outcome = try LogInspector.repair(path: path)
                print(outcome)
            } catch {
                fail("\(error)")
            }
        }
    }
}
