#if canImport(Glibc)
import Glibc
#endif

/// A mutex with a condition variable whose waits can time out, on the monotonic clock (a wall
/// clock step must not make the scheduler sleep for an hour). RyzeCore's locks are its own and
/// have no timed wait; this is the deliverer's.
final class Monitor: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    init() {
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// With the lock held: sleeps until `broadcast` or until `seconds` have passed (nil: no limit).
    func wait(seconds: Double?) {
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

    /// With the lock held.
    func broadcast() { pthread_cond_broadcast(condition) }
}

/// Seconds on the monotonic clock, for durations and waits.
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
