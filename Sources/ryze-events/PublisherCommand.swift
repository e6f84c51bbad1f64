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

        @Option(help: "Publisher name: 1 to 100 of A-Z a-z 0-9 _ -.")
        var name: String

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
                try Publishers.create(in: openStore(data), name: name, token: token)
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
            for p in Publishers.list(in: openStore(data)) { print("\(p.name)\t\(p.disabled ? "disabled" : "active")") }
        }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a publisher: its token stops working at once, in every worker.")

        @OptionGroup var data: DataDirectory

        @Argument(help: "The publisher's name.")
        var name: String

        func run() throws {
            do {
                try Publishers.disable(in: openStore(data), name: name)
            } catch {
                fail("\(error)")
            }
            print("publisher \(name) disabled")
        }
    }
}
