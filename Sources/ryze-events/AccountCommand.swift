import ArgumentParser
import Foundation
import RyzeCore

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

        @Option(help: "Account name: 1 to 100 of A-Z a-z 0-9 _ -.")
        var name: String

        @Option(name: .customLong("instance-quota"), help: "Most instances this account may hold; 0 means no limit.")
        var instanceQuota: UInt32 = 100

        @Option(help: "Use this token (16 to 256 printable ASCII characters, no spaces) instead of a generated one.")
        var token: String?

        func validate() throws {
            guard Names.isValidName(name) else { throw ValidationError("--name must match ^[A-Za-z0-9_-]{1,100}$") }
            if let token, !Names.isValidChosenToken(token) {
                throw ValidationError("--token must be 16 to 256 printable ASCII characters without spaces")
            }
        }

        func run() throws {
            let token = self.token ?? TokenGenerator.make()
            do {
                try Accounts.create(in: openStore(data), name: name, token: token, instanceQuota: instanceQuota)
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
            let accounts = Accounts.list(in: openStore(data))
            print("NAME\tSTATUS\tINSTANCES\tQUOTA")
            for a in accounts {
                print("\(a.name)\t\(a.disabled ? "disabled" : "active")\t\(a.instances.count)\t\(a.instanceQuota == 0 ? "unlimited" : String(a.instanceQuota))")
            }
        }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Disable an account: its token and its instances' tokens stop working at once, in every worker."
        )

        @OptionGroup var data: DataDirectory

        @Argument(help: "The account's name.")
        var name: String

        func run() throws {
            do {
                try Accounts.disable(in: openStore(data), name: name)
            } catch {
                fail("\(error)")
            }
            print("account \(name) disabled")
        }
    }
}

func openStore(_ data: DataDirectory) -> LogStore {
    do {
        return try LogStore(directory: data.path)
    } catch {
        fail("\(error)")
    }
}
