import ArgumentParser
import Foundation
import RyzeCore

@main
struct RyzeEvents: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ryze-events",
        abstract: "The RyzeAPI Events configuration API as a FastCGI application.",
        discussion: """
            All processes pointed at one data directory form one deployment: they share the \
            append-only log and the rate-limit table.
            """,
        subcommands: [Serve.self, Deliver.self, AccountCommand.self, PublisherCommand.self, WebhookCommand.self, LogCommand.self, StoreCommand.self]
    )

    /// ArgumentParser's own `main`, but a usage error prints one line (SPEC §5: "bad arguments
    /// exit non-zero with a one-line reason"), not its message followed by help and usage lines;
    /// `--help` and the like still print in full and exit 0. The exit codes are ArgumentParser's
    /// (64 for a usage error).
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }
            var reason = message(for: error)
            // A usage error's message goes on with help lines for the option; a failure of the
            // command itself is kept whole.
            if code == .validationFailure {
                reason = reason.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? "invalid arguments"
            }
            if reason.hasPrefix("Error: ") { reason.removeFirst("Error: ".count) }
            fail(reason, exitCode: code.rawValue)
        }
    }
}

/// `--data-dir`, shared by every subcommand.
struct DataDirectory: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: ArgumentHelp("Data directory (default: $RYZE_DATA_DIR, else ./data).", valueName: "dir"))
    var dataDir: String?

    @Option(name: .customLong("secret-key-file"), help: ArgumentHelp(
        "The deployment's secret key (32 random bytes, mode 0600; it encrypts webhook secrets at rest). Default: secret.key in the data directory, made on first use.",
        valueName: "path"))
    var secretKeyFile: String?

    @Option(name: .customLong("store"), help: ArgumentHelp(
        "Keep the deployment's state in PostgreSQL instead of the data directory, for several hosts: postgresql://USER@HOST/DB (any libpq connection URI). See the README for what this mode covers.",
        valueName: "url"))
    var store: String?

    func validate() throws {
        if let store, !(store.hasPrefix("postgresql://") || store.hasPrefix("postgres://")) {
            throw ValidationError("--store takes a postgresql:// connection URI")
        }
    }

    var path: String {
        if let dataDir, !dataDir.isEmpty { return dataDir }
        if let env = ProcessInfo.processInfo.environment["RYZE_DATA_DIR"], !env.isEmpty { return env }
        return "./data"
    }

    var secretKeyPath: String { secretKeyFile ?? DeploymentKey.defaultPath(dataDirectory: path) }

    /// The deployment key for a store's encrypted records: made on first use only while no
    /// record is sealed under any key, so that a lost or replaced key file is a refusal with the
    /// file's name, never a new key that opens nothing.
    func loadKey(for store: some StateStore) throws -> DeploymentKey {
        let sealedUnder = store.read { $0.sealedKeyIDs }
        // With --store every host must hold the same key: one made here would seal secrets that
        // the other hosts cannot open, so it is never made on first use (README, multi-host).
        let key = try DeploymentKey.loadOrCreate(path: secretKeyPath, create: sealedUnder.isEmpty && self.store == nil)
        for id in sealedUnder { try key.verify(expected: id) }
        return key
    }
}

/// A one-line reason on standard error and a non-zero exit, for failures that are not usage errors.
struct Fatal: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

func fail(_ message: String, exitCode: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data(("ryze-events: " + message + "\n").utf8))
    exit(exitCode)
}
