import ArgumentParser
import RyzeCore
import RyzePostgres

struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Move a deployment's state between stores.",
        subcommands: [Migrate.self]
    )

    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy a one-host deployment (the data directory's log) into PostgreSQL (--store).",
            discussion: """
                Stop the workers first. The database must hold no accounts or publishers yet; the \
                copy is one transaction, so it is all there or not at all. Webhook secrets stay \
                sealed under the data directory's secret.key: copy that file to every host. The \
                delivery queue's pending deliveries and dead letters are copied too (stop the \
                deliverer first), in a second transaction after the state. If that second copy \
                fails, run the command again with --queue-only: the state is there already.
                """
        )

        @OptionGroup var data: DataDirectory

        @Flag(help: "Copy only the delivery queue (after a copy whose state went through and whose queue did not).")
        var queueOnly = false

        func validate() throws {
            guard data.store != nil else { throw ValidationError("store migrate needs --store postgresql://...") }
        }

        func run() throws {
            do {
                if !queueOnly {
                    let source = try LogStore(directory: data.path)
                    let (records, summary) = source.read { state in
                        (state.liveRecords,
                         "\(state.accounts.count) accounts, \(state.instances.count) instances, \(state.publishers.count) publishers")
                    }
                    let target = try PostgresStore(url: data.store!, options: .init(follow: false))
                    _ = try target.importRecords(records)
                    print("copied \(summary) (\(records.count) records) into PostgreSQL; every host needs \(data.secretKeyPath)")
                }
            } catch {
                fail("\(error)")
            }
            do {
                let local = try QueueStore(directory: data.path)
                let copied = try PostgresQueue(url: data.store!).importQueue(local.read { $0 })
                print("copied the delivery queue: \(copied.pending) pending deliveries, \(copied.dead) dead letters")
            } catch {
                fail((queueOnly ? "" : "the state was copied, ") + "the delivery queue was not (\(error)); run store migrate again with --queue-only")
            }
        }
    }
}
