import ArgumentParser
import Foundation
import Logging
import RyzeCore
import RyzeStream

struct AccountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "account",
        abstract: "Create, list and disable accounts (safe while workers run).",
        subcommands: [Create.self, List.self, Disable.self]
    )

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an account and print its token, alone on one line of standard output.",
            discussion: "The token is shown only this once; the data directory keeps only its SHA-256 digest."
        )

        @OptionGroup var data: DataDirectory

        @OptionGroup var holder: TokenHolderOptions

        @Option(name: .customLong("instance-quota"), help: "Most instances this account may hold; 0 means no limit.")
        var instanceQuota: UInt32 = 100

        func run() throws {
            let token = holder.tokenToIssue
            do {
                try Accounts.create(in: openStateStore(data), name: holder.name, token: token, instanceQuota: instanceQuota)
            } catch {
                fail("\(error)")
            }
            print(token)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List accounts: name, status, instances and quota (never tokens).")

        @OptionGroup var data: DataDirectory

        func run() throws {
            let accounts = Accounts.list(in: openStateStore(data))
            print("NAME\tSTATUS\tINSTANCES\tQUOTA")
            for a in accounts {
                print("\(a.name)\t\(a.disabled ? "disabled" : "active")\t\(a.instances.count)\t\(a.instanceQuota == 0 ? "unlimited" : String(a.instanceQuota))")
            }
        }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Disable an account: its token and its instances' tokens stop working at once, in every worker.",
            discussion: """
                With --fanout-socket (or $RYZE_FANOUT_SOCKET), the open WebSocket connections of its \
                instances are closed too, through nginx nchan's publisher socket (the workers' \
                --fanout-socket); without it they stay open until their clients leave.
                """
        )

        @OptionGroup var data: DataDirectory

        @Option(name: .customLong("fanout-socket"), help: ArgumentHelp("nginx nchan's publisher unix socket, as given to the workers: close the account's open WebSocket connections through it. Default: $RYZE_FANOUT_SOCKET.", valueName: "path"))
        var fanoutSocket: String?

        @Argument(help: "The account's name.")
        var name: String

        func run() throws {
            let channels: [String]
            do {
                channels = try Accounts.disable(in: openStateStore(data), name: name)
            } catch {
                fail("\(error)")
            }
            print("account \(name) disabled")
            let socket = fanoutSocket ?? ProcessInfo.processInfo.environment["RYZE_FANOUT_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
            guard let socket else {
                if !channels.isEmpty {
                    FileHandle.standardError.write(Data("ryze-events: no --fanout-socket: the open WebSocket connections of its \(channels.count) instance(s) stay open\n".utf8))
                }
                return
            }
            // Once the disable is durable, as deleting an instance does: the tokens can no longer
            // open a connection, so the ones closed here cannot come back. Best effort, like every
            // use of the fan-out; a failure is logged on standard error.
            let stream = NchanStream(socketPath: socket, logger: Logger(label: "ryze.stream"))
            var failed = 0
            for channel in channels where !stream.closeReporting(channel: channel) { failed += 1 }
            if failed > 0 {
                fail("the fan-out did not close the connections of \(failed) of \(channels.count) instance(s)")
            }
        }
    }
}

/// The data directory's log, for the log tools (never with `--store`).
func openStore(_ data: DataDirectory) -> LogStore {
    data.refuseSharedStore("log")
    do {
        return try LogStore(directory: data.path)
    } catch {
        fail("\(error)")
    }
}

/// The deployment's state, wherever `--store` says it lives, for one-shot tools.
func openStateStore(_ data: DataDirectory) -> any StateStore {
    do {
        return try data.openStateStore(follow: false)
    } catch {
        fail("\(error)")
    }
}
