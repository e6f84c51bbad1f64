#if canImport(Glibc)
import Glibc
#endif

/// Group commit's queue: concurrent writers of one process queue their decisions, and one of
/// them at a time, the leader, commits everything queued with one append and one `fdatasync`.
///
/// Typed end to end: a decision returns a `Decision`, and whatever else it produces (the
/// caller's value, or why it refused) it leaves in variables its caller captured; the queue only
/// carries the outcome of the append.
///
/// `lock` guards `queue`, `leaderActive` and every ticket's `outcome`. It is a leaf: nothing
/// else is locked while it is held.
///
/// Wake-ups are targeted: each waiting writer sleeps on its own ticket's condition (with `lock`),
/// a leader's `publish` wakes exactly the writers of its batch, and a leader that is done wakes
/// only the oldest writer still queued, to lead next. (One shared condition with a broadcast woke
/// every waiter of the process on every commit, most of them to find nothing and sleep again:
/// two context switches and a turn on `lock` each, on the path every durable publish waits on.)

final class GroupCommit<S: ReplayedLog>: @unchecked Sendable {
    enum Decision {
        case append(S.Entry)
        /// Nothing to write: the caller's value stands as decided.
        case nothing
        /// The caller's decision refused; its closure kept the reason.
        case refused
    }

    enum Outcome {
        /// Decided; and, if it appended, durable.
        case settled
        case failed(StoreError)
    }

    final class Ticket {
        /// Wraps a closure that may not escape `submit`: the leader drops it in the same critical
        /// section that publishes `outcome`, so it is gone before its writer can see the outcome
        /// and return.
        fileprivate(set) var decide: ((S) -> Decision)?
        fileprivate var outcome: Outcome?
        /// Its writer sleeps on it, with the queue's `lock`.
        fileprivate let wakeUp: UnsafeMutablePointer<pthread_cond_t>

        fileprivate init(_ decide: @escaping (S) -> Decision) {
            self.decide = decide
            wakeUp = .allocate(capacity: 1)
            pthread_cond_init(wakeUp, nil)
        }

        deinit {
            pthread_cond_destroy(wakeUp)
            wakeUp.deallocate()
        }
    }

    private let lock = ConditionLock()
    private var queue: [Ticket] = []
    private var leaderActive = false

    /// Queues `decide` and returns its outcome. When no leader is active this thread becomes the
    /// leader and runs `lead` (without `lock`), which must take the batch with `takeBatch()` and
    /// hand every ticket of it to `publish`.
    func submit(_ decide: (S) -> Decision, lead: () -> Void) -> Outcome {
        withoutActuallyEscaping(decide) { decide in
            let ticket = Ticket(decide)
            lock.lock()
            defer { lock.unlock() }
            queue.append(ticket)
            while true {
                if let outcome = ticket.outcome { return outcome }
                if leaderActive {
                    lock.wait(on: ticket.wakeUp)
                    continue
                }
                leaderActive = true
                lock.unlock()
                lead()
                lock.lock()
                leaderActive = false
                // Everyone of the batch was woken by `publish`; whoever queued meanwhile waits
                // for a leader, and the oldest of them becomes it (a writer arriving first may
                // lead instead; the woken one then finds its outcome, or waits again).
                if let next = queue.first { pthread_cond_signal(next.wakeUp) }
            }
        }
    }

    /// Everything queued so far. Taken by the leader only once it holds the file lock and has
    /// caught up with the file, so that writers that queued while it waited for another
    /// process's commit (or read its records) ride along.
    func takeBatch() -> [Ticket] {
        lock.lock()
        defer { lock.unlock() }
        let batch = queue
        queue.removeAll(keepingCapacity: true)
        return batch
    }

    /// Publishes the outcomes of a batch all at once, at the end of the commit, and wakes their
    /// writers: a writer may also wake at any moment (spuriously, or handed the lead), and must
    /// not find its outcome while this leader still holds its closure.
    func publish(_ outcomes: [(Ticket, Outcome)]) {
        lock.lock()
        for (ticket, outcome) in outcomes {
            ticket.decide = nil
            ticket.outcome = outcome
            pthread_cond_signal(ticket.wakeUp)
        }
        lock.unlock()
    }
}
