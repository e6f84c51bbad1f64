import ArgumentParser
import RyzeCore

struct PublisherCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publisher",
        abstract: "Create, list and disable publisher tokens: the producers' tokens for POST /api/events/publish/:instance.",
        subcommands: [Create.self, List.self, Disable.self]
    )

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a publisher and print its token, alone on one line of standard output.",
            discussion: "A publisher token may publish to any instance of the deployment and is good for nothing else. It is shown only this once; the data directory keeps only its SHA-256 digest."
        )

        @OptionGroup var data: DataDirectory

        @OptionGroup var holder: TokenHolderOptions

        func run() throws {
            let token = holder.tokenToIssue
            do {
                try Publishers.create(in: openStateStore(data), name: holder.name, token: token)
            } catch {
                fail("\(error)")
            }
            print(token)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List publishers: name and status (never tokens).")

        @OptionGroup var data: DataDirectory

        func run() throws {
            print("NAME\tSTATUS")
            for p in Publishers.list(in: openStateStore(data)) { print("\(p.name)\t\(p.disabled ? "disabled" : "active")") }
        }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a publisher: its token stops working at once, in every worker.")

        @OptionGroup var data: DataDirectory

        @Argument(help: "The publisher's name.")
        var name: String

        func run() throws {
            do {
                try Publishers.disable(in: openStateStore(data), name: name)
            } catch {
                fail("\(error)")
            }
            print("publisher \(name) disabled")
        }
    }
}
