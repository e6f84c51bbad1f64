import ArgumentParser
import Foundation
import Logging
import RyzeCore
import RyzeDeliver
import RyzePostgres
#if canImport(Glibc)
import Glibc
#endif

struct Deliver: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the webhook deliverer: POST queued events to their webhooks, with retries and dead letters.",
        discussion: """
            One per data directory (it holds deliver.lock; a second one exits 1). With --store the \
            queue is PostgreSQL's and any number of deliverers (one per host) share it, each \
            delivery leased to one at a time. It follows the delivery queue and the webhooks' configuration, and sends each delivery at least once: \
            kill it at any moment and a restart sends what was not recorded as delivered, with the \
            same webhook-id. SIGTERM or SIGINT stop it gracefully: no new attempt starts, attempts \
            in flight finish (each within --webhook-timeout) and are recorded, and it exits 0.
            """
    )

    @OptionGroup var data: DataDirectory

    @Option(name: .customLong("retry-schedule"), help: ArgumentHelp(
        "The waits after each failed attempt (s, m, h, d; each +-10% at random): attempts in all = waits + 1.", valueName: "waits"))
    var retrySchedule: String = RetryPolicy.defaultSchedule

    @Option(name: .customLong("webhook-timeout"), help: ArgumentHelp("Seconds for a whole attempt: a 2xx must arrive within them.", valueName: "seconds"))
    var webhookTimeout: Double = 15

    @Flag(name: .customLong("allow-private-targets"), help: "Send to loopback, private, link-local and other reserved addresses too (tests, closed networks).")
    var allowPrivateTargets = false

    @Option(help: "Sender threads: attempts in flight at most.")
    var concurrency: Int = 16

    @Option(name: .customLong("per-endpoint"), help: ArgumentHelp("Attempts in flight at most to one endpoint (scheme, host, port).", valueName: "n"))
    var perEndpoint: Int = 4

    @Option(name: .customLong("lease-margin"), help: ArgumentHelp("With --store: a delivery is leased to this deliverer for --webhook-timeout plus this many seconds (renewed every 5 s while held); a deliverer that dies leaves its deliveries to the others after that long.", valueName: "seconds"))
    var leaseMargin: Double = 30

    @Option(name: .customLong("compact-factor"), help: "Compact the queue automatically when it holds more than this many times the records of its current state (and at least 1000); 0: never.")
    var compactFactor: Int = 4

    @Option(name: .customLong("log-file"), help: ArgumentHelp("Append logs here instead of standard error.", valueName: "path"))
    var logFile: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        guard RetryPolicy.parse(retrySchedule) != nil else {
            throw ValidationError("--retry-schedule takes waits like 5s,5m,30m,2h (s, m, h or d; each above 0)")
        }
        guard webhookTimeout > 0 && webhookTimeout <= 3600 else { throw ValidationError("--webhook-timeout must be above 0 and at most 3600 seconds") }
        guard concurrency >= 1 && concurrency <= 1024 else { throw ValidationError("--concurrency must be between 1 and 1024") }
        guard perEndpoint >= 1 && perEndpoint <= 1024 else { throw ValidationError("--per-endpoint must be between 1 and 1024") }
        guard leaseMargin >= 12 && leaseMargin <= 3600 else { throw ValidationError("--lease-margin must be between 12 and 3600 seconds") }
        guard compactFactor >= 0 else { throw ValidationError("--compact-factor must be 0 or more") }
    }

    func run() throws {
        // Before any thread exists (the stores start some): every thread inherits the blocked
        // mask, so SIGTERM reaches only the signal thread, never kills the process outright.
        let stopper = Stopper()
        StopSignals.install { _ in stopper.stop() }
        let logger: Logger
        let lock: DeliverLock
        let deliverer: Deliverer
        do {
            try LogSetup.bootstrap(file: logFile, level: logLevel)
            logger = Logger(label: "ryze.deliver")
            // With --store the configuration and the queue are PostgreSQL's, shared with the
            // other hosts' deliverers (leases); the data directory keeps this host's lock and
            // in-flight counter only.
            let store = try data.openStateStore(follow: true)
            try FileManager.default.createDirectory(atPath: data.path, withIntermediateDirectories: true)
            lock = try DeliverLock(directory: data.path)
            let queue: any DeliverySource
            if let url = data.store {
                var options = PostgresDeliverySource.Options(timeout: webhookTimeout, concurrency: concurrency, perEndpoint: perEndpoint)
                options.leaseSeconds = webhookTimeout + leaseMargin
                queue = try PostgresDeliverySource(
                    url: url, identity: lock.identity, options: options,
                    counters: DeliveryCounters(path: data.path + "/" + LogKind.deliveries.name + ".counters"), logger: Logger(label: "ryze.queue"))
            } else {
                queue = try QueueStore(directory: data.path, autoCompactionFactor: compactFactor > 0 ? compactFactor : nil,
                                       logger: Logger(label: "ryze.queue"))
            }
            let key = try data.loadKey(for: store)
            let configuration = Deliverer.Configuration(
                concurrency: concurrency, perEndpoint: perEndpoint, retry: RetryPolicy.parse(retrySchedule)!,
                timeout: webhookTimeout, allowPrivateTargets: allowPrivateTargets)
            deliverer = Deliverer(configuration: configuration, queue: queue, store: store, secrets: SecretBox(key: key),
                                  stripMedia: EventEnvelope.strippingMedia, logger: logger)
        } catch {
            Logger(label: "ryze.deliver").critical("cannot deliver: \(error)")
            fail("\(error)")
        }
        stopper.attach(deliverer)
        logger.info("deliverer started", metadata: [
            "data_dir": "\(data.path)", "concurrency": "\(concurrency)", "per_endpoint": "\(perEndpoint)",
            "retry_schedule": "\(retrySchedule)", "timeout_s": "\(webhookTimeout)", "allow_private_targets": "\(allowPrivateTargets)",
        ])
        let reason = deliverer.run()
        withExtendedLifetime(lock) {}
        switch reason {
        case .requested:
            logger.info("deliverer stopped")
        case .queueUnwritable(let why):
            logger.critical("deliverer stopped: the queue cannot be written", metadata: ["error": "\(why)"])
            fail("the delivery queue cannot be written any more (\(why)); a restart replays it")
        }
    }
}

/// Hands a stop signal to the deliverer, or keeps it for the deliverer made after it arrived.
/// `lock` guards both fields.
private final class Stopper: @unchecked Sendable {
    private let lock = NSLock()
    private var deliverer: Deliverer?
    private var stopped = false

    func stop() {
        lock.lock()
        stopped = true
        let d = deliverer
        lock.unlock()
        d?.stop()
    }

    func attach(_ d: Deliverer) {
        lock.lock()
        deliverer = d
        let early = stopped
        lock.unlock()
        if early { d.stop() }
    }
}
