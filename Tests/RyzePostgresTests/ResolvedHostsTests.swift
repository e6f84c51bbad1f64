import RyzeCore
import Testing
@testable import RyzePostgres

/// What libpq is handed so that it never resolves a name itself (PGConnection.resolvedHosts):
/// no server needed.
@Suite struct ResolvedHostsTests {
    func settings(_ url: String) throws -> [String: String] {
        Dictionary(uniqueKeysWithValues: try PGConnection.resolvedHosts(url: url, deadline: .after(milliseconds: 2000)))
    }

    @Test func aHostNameBecomesItsAddressesWithTheNameKept() throws {
        let s = try settings("postgresql://ryze@localhost:5433/ryze")
        #expect(s["host"] == "localhost")
        #expect(s["hostaddr"] == "127.0.0.1")
        #expect(s["port"] == "5433")
    }

    @Test func addressesSocketsAndAGivenHostaddrNeedNothing() throws {
        #expect(try settings("postgresql://ryze@10.0.0.5:5432/ryze").isEmpty)
        #expect(try settings("postgresql://ryze@[::1]/ryze").isEmpty)
        #expect(try settings("postgresql:///ryze?host=/run/postgresql").isEmpty)
        #expect(try settings("postgresql://ryze@db.example/ryze?hostaddr=10.0.0.5").isEmpty)
        #expect(try settings("host=10.0.0.5 dbname=ryze").isEmpty)
    }

    @Test func everyHostOfAListKeepsItsPort() throws {
        let s = try settings("host=localhost,10.0.0.5,/tmp port=1,2,3 dbname=ryze")
        #expect(s["host"] == "localhost,10.0.0.5,/tmp")
        #expect(s["hostaddr"] == "127.0.0.1,10.0.0.5,")
        #expect(s["port"] == "1,2,3")
        let one = try settings("host=localhost,10.0.0.5 port=7 dbname=ryze")
        #expect(one["hostaddr"] == "127.0.0.1,10.0.0.5" && one["port"] == "7,7")
    }

    @Test func aHostOfAListThatDoesNotResolveIsLeftOutAsLibpqWould() throws {
        let s = try settings("host=no-such-host.invalid,localhost port=1,2 dbname=ryze")
        #expect(s["host"] == "localhost" && s["hostaddr"] == "127.0.0.1" && s["port"] == "2")
        #expect(throws: StoreError.self) { try settings("host=no-such-host.invalid,also-not.invalid dbname=ryze") }
    }

    @Test func aNameThatDoesNotResolveIsUnavailableWithItsName() throws {
        #expect { try settings("postgresql://ryze@no-such-host.invalid/ryze") } throws: {
            guard let e = $0 as? StoreError, e.isUnavailable else { return false }
            return e.description.contains("no-such-host.invalid")
        }
    }
}
