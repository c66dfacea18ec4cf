import XCTest

@testable import PGProbeCore

final class DSNTests: XCTestCase {
    func testURIForm() throws {
        let dsn = try DSN(parsing: "postgres://alice:s%40cret@db.example:6543/app?sslmode=disable&application_name=x")
        XCTAssertEqual(dsn, DSN(host: "db.example", port: 6543, user: "alice", password: "s@cret", database: "app"))
        XCTAssertEqual(dsn.redacted, "alice@db.example:6543/app")
        XCTAssertEqual(try DSN(parsing: "postgresql://[::1]:5433/x").host, "::1")
        XCTAssertEqual(try DSN(parsing: "postgresql://[::1]:5433/x").port, 5433)
        XCTAssertEqual(try DSN(parsing: "postgres://127.0.0.1"), DSN(host: "127.0.0.1", user: "postgres"))
    }

    func testKeywordForm() throws {
        let dsn = try DSN(parsing: "host=127.0.0.1 port=5999 user=bob dbname='my db' password='it\\'s'")
        XCTAssertEqual(dsn, DSN(host: "127.0.0.1", port: 5999, user: "bob", password: "it's", database: "my db"))
    }

    func testBadInputNamesTheProblem() {
        func message(_ text: String) -> String {
            do {
                _ = try DSN(parsing: text)
                return "parsed"
            } catch { return error.description }
        }
        XCTAssertTrue(message("").contains("empty"))
        XCTAssertTrue(message("mysql://x").contains("unknown scheme"))
        XCTAssertTrue(message("postgres://h:99999/db").contains("99999"))
        XCTAssertTrue(message("postgres://h:abc/db").contains("abc"))
        XCTAssertTrue(message("postgres://h/db?sslmode=require").contains("sslmode=require"))
        XCTAssertTrue(message("host=h port").contains("'port' has no value"))
        XCTAssertTrue(message("host=h frobnicate=1").contains("frobnicate"))
        XCTAssertTrue(message("host=/var/run/postgresql").contains("Unix socket"))
        XCTAssertTrue(message("dbname='open").contains("unterminated"))
    }

    func testTaggerRoundTrip() {
        let tagger = QueryTagger(runID: "abc")
        let sql = tagger.sql(17, "SELECT 1")
        XCTAssertEqual(sql, "/* pgprobe abc 17 */ SELECT 1")
        XCTAssertEqual(tagger.index(in: sql), 17)
        XCTAssertNil(tagger.index(in: "/* pgprobe xyz 17 */ SELECT 1"))
        XCTAssertNil(tagger.index(in: "SELECT 1"))
    }

    func testQueryStatisticsLines() {
        var statistics = QueryStatistics()
        let ok = statistics.add(QueryOutcome(index: 0, latencyNanos: 250_000, sql: "SELECT 1"))
        XCTAssertTrue(ok.hasPrefix("query 1 0.250 ms | n=1 min/avg/max 0.250/0.250/0.250 ms sd 0 ms"), ok)
        let failed = statistics.add(QueryOutcome(index: 1, failure: "connect: refused", sql: "SELECT 1"))
        XCTAssertEqual(failed, "query 2 FAILED: connect: refused (failed so far: 1)")
        _ = statistics.add(QueryOutcome(index: 2, latencyNanos: 350_000, sql: "SELECT 1"))
        XCTAssertEqual(statistics.summary.count, 3)
        XCTAssertEqual(statistics.summary.failed, 1)
        XCTAssertEqual(statistics.summary.latency_s.mean, 0.0003, accuracy: 1e-12)
        // Sample standard deviation of 250 µs and 350 µs: 70.71 µs.
        XCTAssertEqual(statistics.summary.latency_s.stddev, 0.0000707107, accuracy: 1e-9)
    }
}
