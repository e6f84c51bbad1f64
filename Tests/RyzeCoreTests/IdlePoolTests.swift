import Testing
@testable import RyzeCore

@Suite struct IdlePoolTests {
    final class Resource { let n: Int; init(_ n: Int) { self.n = n } }

    @Test func givesBackTheLastGivenAndHoldsNoMoreThanItsBound() {
        let pool = IdlePool<Resource>(maxIdle: 2)
        #expect(pool.take() == nil)
        #expect(pool.give(Resource(1)))
        #expect(pool.give(Resource(2)))
        #expect(!pool.give(Resource(3)))   // beyond the bound: the caller keeps (and drops) it
        #expect(pool.count == 2)
        #expect(pool.take()?.n == 2)
        #expect(pool.take()?.n == 1)
        #expect(pool.take() == nil)
    }

    @Test func drainEmptiesThePool() {
        let pool = IdlePool<Resource>()
        for i in 0..<5 { pool.give(Resource(i)) }
        #expect(pool.drain().map(\.n) == [0, 1, 2, 3, 4])
        #expect(pool.count == 0 && pool.take() == nil)
    }
}
