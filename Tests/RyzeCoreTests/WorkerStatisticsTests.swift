import Testing
@testable import RyzeCore

@Suite struct WorkerStatisticsTests {
    @Test func perThreadCountsAddUp() async {
        let stats = WorkerStatistics(threads: 4)
        await withTaskGroup(of: Void.self) { group in
            for thread in 0..<4 {
                group.addTask {
                    for _ in 0..<1000 {
                        stats.requestStarted(thread: thread)
                        stats.requestFinished(thread: thread)
                    }
                }
            }
        }
        stats.requestStarted(thread: 2)
        #expect(stats.requestsServed == 4000)
        #expect(stats.requestsInFlight == 1)
    }
}
