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
            let store = openStore(data)
            let token = self.token ?? TokenGenerator.make()
            let digest = TokenDigest(of: token)
            do {
                try store.write { state -> (LogRecord?, Void) in
                    if state.accounts[name] != nil { throw Fatal("account \(name) already exists") }
                    if state.tokenInUse(digest) { throw Fatal("that token is already in use") }
                    return (.accountCreated(name: name, token: digest, instanceQuota: instanceQuota), ())
                }
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
            let store = openStore(data)
            let accounts = store.read { $0.accounts.values.sorted { $0.name < $1.name } }
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
            let store = openStore(data)
            do {
                try store.write { state -> (LogRecord?, Void) in
                    guard let account = state.accounts[name] else { throw Fatal("no account named \(name)") }
                    return (account.disabled ? nil : .accountDisabled(name: name), ())
                }
            } catch {
                fail("\(error)")
            }
            print("account \(name) disabled")
        }
    }
}

func openStore(_ data: DataDirectory) -> Store {
    do {
        return try Store(directory: data.path)
    } catch {
        fail("\(error)")
    }
}
