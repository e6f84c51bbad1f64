import ArgumentParser
import Foundation
import RyzeCore
import RyzeDeliver

struct WebhookCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhook",
        abstract: "Webhook deliveries: the dead-letter queue.",
        subcommands: [Dead.self]
    )

    struct Dead: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, retry and purge dead letters: deliveries that failed every attempt or whose target was refused.",
            discussion: "Safe while workers and deliverers run: each change is one record under the queue's lock, or one transaction with --store.",
            subcommands: [List.self, Retry.self, Purge.self]
        )
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List dead letters: id, event id, account, instance, label, event, attempts, dead since (UTC), last error."
        )

        @OptionGroup var data: DataDirectory

        @Option(help: "Only the dead letters of instances of this name (in any account), or of ACCOUNT.NAME.")
        var instance: String?

        func run() throws {
            var letters: [QueueStore.DeadLetter]
            do { letters = try openQueue(data).deadLetters(instance: nil) } catch { fail("\(error)") }
            if let instance {
                // `account.name` as the publish path takes it (`.` is in neither name's alphabet).
                if let dot = instance.firstIndex(of: ".") {
                    let account = String(instance[..<dot]), name = String(instance[instance.index(after: dot)...])
                    letters = letters.filter { $0.account == account && $0.instance == name }
                } else {
                    letters = letters.filter { $0.instance == instance }
                }
            }
            print("ID\tEVENT ID\tACCOUNT\tINSTANCE\tLABEL\tEVENT\tATTEMPTS\tDEAD SINCE\tLAST ERROR")
            for d in letters {
                print("\(d.id)\t\(d.eventID)\t\(d.account)\t\(d.instance)\t\(d.label.name)\t\(d.event.name)\t\(d.attempts)\t\(utc(d.deadSince))\t\(d.lastError)")
            }
        }
    }

    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put dead letters back in the queue with a fresh schedule (due now).",
            discussion: "All or nothing: when one of the ids is not a dead letter, nothing changes."
        )

        @OptionGroup var data: DataDirectory

        @Argument(help: "Ids from `webhook dead list`.")
        var ids: [DeliveryID] = []

        @Flag(help: "Every dead letter.")
        var all = false

        func validate() throws {
            guard all != !ids.isEmpty else { throw ValidationError("name dead letters by id, or pass --all (not both)") }
        }

        func run() throws {
            do {
                let n = try openQueue(data).retryDead(all ? nil : ids)
                print("\(n) dead letter\(n == 1 ? "" : "s") back in the queue")
            } catch {
                fail("\(error)")
            }
        }
    }

    struct Purge: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove dead letters for good: all, or those dead for longer than --older-than.")

        @OptionGroup var data: DataDirectory

        @Option(name: .customLong("older-than"), help: ArgumentHelp("Only those dead for longer than this (30s, 5m, 2h, 7d).", valueName: "duration"))
        var olderThan: String?

        func validate() throws {
            if let olderThan, DurationText.parse(olderThan) == nil {
                throw ValidationError("--older-than takes a duration like 30s, 5m, 2h or 7d")
            }
        }

        func run() throws {
            do {
                let n = try openQueue(data).purgeDead(olderThan: olderThan.flatMap(DurationText.parse).map { UInt64($0 * 1_000_000) })
                print("\(n) dead letter\(n == 1 ? "" : "s") purged")
            } catch {
                fail("\(error)")
            }
        }
    }
}

/// The dead letters: the data directory's queue, or PostgreSQL's with `--store`.
func openQueue(_ data: DataDirectory) -> any DeadLetterQueue {
    do {
        return try data.openDeadLetters()
    } catch {
        fail("\(error)")
    }
}

/// `2026-11-29T16:42:55Z`
private func utc(_ microseconds: UInt64) -> String {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime]
    return f.string(from: Date(timeIntervalSince1970: Double(microseconds) / 1e6))
}
