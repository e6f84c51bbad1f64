#if canImport(Glibc)
import Glibc
#endif

/// Runs automatic compaction on a thread of its own. Compaction rewrites the whole log under the
/// deployment's write lock; done on the request that crossed the threshold, that request would
/// wait for the rewrite (a second for a million records) on top of its own write.
///
/// `condition` guards `requested` and `stopped`; it is a leaf lock.
final class AutoCompactor: @unchecked Sendable {
    private let condition = ConditionLock()
    private var requested = false
    private var stopped = false

    /// `run` is called on the compactor's thread, once per burst of requests.
    init(_ run: @escaping @Sendable () -> Void) {
        BackgroundThread.start { [self] in
            while true {
                condition.lock()
                while !requested && !stopped { condition.wait() }
                let stop = stopped
                requested = false
                condition.unlock()
                if stop { return }
                run()
            }
        }
    }

    func request() {
        condition.lock()
        requested = true
        condition.broadcast()
        condition.unlock()
    }

    /// The thread ends after the compaction it may be running.
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }
}
