/// Group commit's queue: concurrent writers of one process queue their decisions, and one of
/// them at a time, the leader, commits everything queued with one append and one `fdatasync`.
///
/// Typed end to end: a decision returns a `Decision`, and whatever else it produces (the
/// caller's value, or why it refused) it leaves in variables its caller captured; the queue only
/// carries the outcome of the append.
///
/// `lock` guards `queue`, `leaderActive` and every ticket's `outcome`. It is a leaf: nothing
/// else is locked while it is held.
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

        fileprivate init(_ decide: @escaping (S) -> Decision) { self.decide = decide }
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
                    lock.wait()
                    continue
                }
                leaderActive = true
                lock.unlock()
                lead()
                lock.lock()
                leaderActive = false
                lock.broadcast()
            }
        }
    }

    /// Everything queued so far. Taken by the leader only once it holds the file lock, so that
    /// writers that queued while it waited for another process's commit ride along.
    func takeBatch() -> [Ticket] {
        lock.lock()
        defer { lock.unlock() }
        let batch = queue
        queue.removeAll(keepingCapacity: true)
        return batch
    }

    /// Publishes the outcomes of a batch all at once, at the end of the commit: a writer may be
    /// woken by an earlier leader's broadcast at any moment, and must not find its outcome while
    /// this leader still holds its closure.
    func publish(_ outcomes: [(Ticket, Outcome)]) {
        lock.lock()
        for (ticket, outcome) in outcomes {
            ticket.decide = nil
            ticket.outcome = outcome
        }
        lock.unlock()
    }
}
