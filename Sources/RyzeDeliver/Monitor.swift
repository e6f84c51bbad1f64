#if canImport(Glibc)
import Glibc
#endif

/// A mutex with condition variables whose waits can time out, on the monotonic clock (a wall
/// clock step must not make the scheduler sleep for an hour). RyzeCore's locks are its own and
/// have no timed wait; this is the deliverer's.
///
/// A condition per kind of waiter, so that waking one does not wake the others: the
/// scheduler is woken at every finished attempt, and waking every idle sender each time was a
/// herd of futile wake-ups on a machine of two cores.
final class Monitor: @unchecked Sendable {
    enum Condition: Int, CaseIterable {
        case scheduler = 0
        case senders = 1
        case recorder = 2
    }

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let conditions: UnsafeMutablePointer<pthread_cond_t>

    init() {
        mutex = .allocate(capacity: 1)
        conditions = .allocate(capacity: Condition.allCases.count)
        pthread_mutex_init(mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        for c in Condition.allCases { pthread_cond_init(conditions + c.rawValue, &attr) }
        pthread_condattr_destroy(&attr)
    }

    deinit {
        for c in Condition.allCases { pthread_cond_destroy(conditions + c.rawValue) }
        pthread_mutex_destroy(mutex)
        conditions.deallocate()
        mutex.deallocate()
    }

    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// With the lock held: sleeps until `signal`/`broadcast` of `condition` or until `seconds`
    /// have passed (nil: no limit).
    func wait(_ condition: Condition, seconds: Double?) {
        let condition = conditions + condition.rawValue
        guard let seconds else {
            pthread_cond_wait(condition, mutex)
            return
        }
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let total = Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9 + max(0, seconds)
        ts.tv_sec = Int(total)
        ts.tv_nsec = Int((total - Double(Int(total))) * 1e9)
        pthread_cond_timedwait(condition, mutex, &ts)
    }

    /// With the lock held: wakes every waiter of `condition`.
    func broadcast(_ condition: Condition) { pthread_cond_broadcast(conditions + condition.rawValue) }

    /// With the lock held: wakes one waiter of `condition`.
    func signal(_ condition: Condition) { pthread_cond_signal(conditions + condition.rawValue) }
}
