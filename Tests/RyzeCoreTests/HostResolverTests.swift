import Foundation
import RyzeCore
import Synchronization
import Testing

/// HostResolver with a lookup of the test's own: a resolver that never answers is a lookup that
/// sleeps (getaddrinfo itself cannot be made to hang here; the e2e test does that with a silent
/// nameserver).
@Suite struct HostResolverTests {
    static func after(_ seconds: Double) -> UInt64 { MonotonicClock.nanoseconds() + UInt64(seconds * 1e9) }

    @Test func numericAddressesNeedNoLookup() throws {
        let resolver = HostResolver(lookup: { _ in Issue.record("looked up"); return .success([]) })
        #expect(try resolver.addresses(of: "10.0.0.5", deadline: Self.after(0)) == ["10.0.0.5"])
        #expect(try resolver.addresses(of: "::1", deadline: Self.after(0)) == ["::1"])
    }

    @Test func localhostResolvesThroughGetaddrinfo() throws {
        let addresses = try HostResolver().addresses(of: "localhost", deadline: Self.after(2))
        #expect(!addresses.isEmpty && addresses.allSatisfy(HostResolver.isNumeric))
    }

    @Test func aLookupThatHangsFailsAtTheDeadlineAndOnlyOneRuns() throws {
        let started = Atomic<Int>(0)
        let resolver = HostResolver(lookup: { _ in
            started.add(1, ordering: .relaxed)
            Thread.sleep(forTimeInterval: 1.5)
            return .success(["192.0.2.1"])
        })
        for _ in 0..<3 {
            let t = monotonicSeconds()
            #expect(throws: HostResolver.Failure.self) { try resolver.addresses(of: "db.example", deadline: Self.after(0.2)) }
            #expect(monotonicSeconds() - t < 0.5)
        }
        // Callers that came while the lookup ran waited for that one.
        #expect(started.load(ordering: .relaxed) == 1)
        // Once it has answered, the answer is there for the next caller.
        Thread.sleep(forTimeInterval: 1.5)
        #expect(try resolver.addresses(of: "db.example", deadline: Self.after(0.2)) == ["192.0.2.1"])
    }

    @Test func aResolverOutageFallsBackOnTheLastAnswerWithoutWaitingTheWholeDeadline() throws {
        let answering = Atomic<Bool>(true)
        let resolver = HostResolver(lookup: { _ in
            if answering.load(ordering: .relaxed) { return .success(["192.0.2.7"]) }
            Thread.sleep(forTimeInterval: 3)
            return .failure(HostResolver.Failure("SERVFAIL"))
        }, staleAfter: 0.1)
        #expect(try resolver.addresses(of: "db.example", deadline: Self.after(1)) == ["192.0.2.7"])
        answering.store(false, ordering: .relaxed)
        let t = monotonicSeconds()
        #expect(try resolver.addresses(of: "db.example", deadline: Self.after(1)) == ["192.0.2.7"])
        #expect(monotonicSeconds() - t < 0.5)
        // A failed lookup with nothing to fall back on is a failure with its reason.
        let failing = HostResolver(lookup: { .failure(HostResolver.Failure("cannot resolve \($0): Name or service not known")) })
        #expect { try failing.addresses(of: "nowhere.example", deadline: Self.after(1)) } throws: {
            ($0 as? HostResolver.Failure)?.description.contains("nowhere.example") == true
        }
    }
}
