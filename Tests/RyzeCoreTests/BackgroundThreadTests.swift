#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import RyzeCore

/// A background thread (the compactor's) must never take a process signal: `serve` waits for its
/// stop signals in the main thread, and a signal landing elsewhere took its default action and
/// ended the worker (BackgroundThread's comment; e2e: test_signals.py).
@Suite struct BackgroundThreadTests {
    @Test func blocksEveryAsynchronousSignalAndNoFault() {
        final class Seen: @unchecked Sendable {   // written by the thread before `done`, read after
            var mask = sigset_t()
        }
        let seen = Seen()
        let done = DispatchSemaphore(value: 0)
        BackgroundThread.start {
            pthread_sigmask(SIG_BLOCK, nil, &seen.mask)
            done.signal()
        }
        #expect(done.wait(timeout: .now() + 5) == .success)
        var m = seen.mask
        for s in [SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM, SIGPIPE, SIGCHLD] {
            #expect(sigismember(&m, s) == 1, "signal \(s) not blocked")
        }
        // Faults are left as the creating thread had them (the test runner's thread may block
        // SIGABRT itself).
        var creator = sigset_t(), added = BackgroundThread.asyncSignals
        pthread_sigmask(SIG_BLOCK, nil, &creator)
        for s in [SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT] {
            #expect(sigismember(&added, s) == 0, "fault signal \(s) blocked")
            #expect(sigismember(&m, s) == sigismember(&creator, s), "fault signal \(s)")
        }
    }

    @Test func leavesTheCreatorsMaskAsItWas() {
        var before = sigset_t(), after = sigset_t()
        pthread_sigmask(SIG_BLOCK, nil, &before)
        BackgroundThread.start {}
        pthread_sigmask(SIG_BLOCK, nil, &after)
        #expect(sigismember(&before, SIGHUP) == sigismember(&after, SIGHUP))
        #expect(sigismember(&before, SIGTERM) == sigismember(&after, SIGTERM))
    }
}
