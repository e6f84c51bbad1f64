import ArgumentParser
import Foundation

@main
struct RyzeEvents: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ryze-events",
        abstract: "The RyzeAPI Events configuration API as a FastCGI application.",
        discussion: """
            All processes pointed at one data directory form one deployment: they share the \
            append-only log and the rate-limit table.
            """,
        subcommands: [Serve.self, AccountCommand.self, LogCommand.self]
    )
}

/// `--data-dir`, shared by every subcommand.
struct DataDirectory: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: ArgumentHelp("Data directory (default: $RYZE_DATA_DIR, else ./data).", valueName: "dir"))
    var dataDir: String?

    var path: String {
        if let dataDir, !dataDir.isEmpty { return dataDir }
        if let env = ProcessInfo.processInfo.environment["RYZE_DATA_DIR"], !env.isEmpty { return env }
        return "./data"
    }
}

/// A one-line reason on standard error and a non-zero exit, for failures that are not usage errors.
struct Fatal: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data(("ryze-events: " + message + "\n").utf8))
    exit(1)
}
