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
            data.refuseSharedStore("log")
            let files = DataFiles(directory: data.path)
            let report: LogMaintenance.Report
            do { report = try LogMaintenance.verify(files) } catch { fail("\(error)") }
            switch report {
            case let .ok(records, bytes):
                print("ok: \(records) records, \(bytes) bytes")
            case let .damaged(records, offset, reason, validAfter, size):
                if let validAfter {
                    fail("\(files.log): damaged at offset \(offset) (\(reason)) after \(records) valid records; valid records follow at offset \(validAfter): run `ryze-events log repair` to cut the log there (a backup is kept)")
                }
                fail("\(files.log): torn tail at offset \(offset) (\(reason)), \(size - offset) bytes after \(records) valid records; the next worker start or write cuts it")
            }
        }
    }

    struct Dump: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print every record, one per line: offset, type, fields. Tokens appear only as digest prefixes.")

        @OptionGroup var data: DataDirectory

        func run() throws {
            do {
                data.refuseSharedStore("log")
                let result = try LogMaintenance.dump(DataFiles(directory: data.path)) { offset, record in print("\(offset)\t\(record)") }
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
            do {
                let r = try openStore(data).compact()
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
            data.refuseSharedStore("log")
            let files = DataFiles(directory: data.path)
            do {
                switch try LogMaintenance.repair(files, backupSuffix: String(Int(Date().timeIntervalSince1970))) {
                case .nothingToRepair(let records):
                    print("nothing to repair: \(records) valid records")
                case let .cut(offset, reason, kept, droppedBytes, droppedRecords, backup):
                    print("cut \(files.log) at offset \(offset) (\(reason)): kept \(kept) records, dropped \(droppedBytes) bytes holding \(droppedRecords) valid-looking records; backup at \(backup)")
                }
            } catch {
                fail("\(error)")
            }
        }
    }
}
