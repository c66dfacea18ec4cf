import Foundation
import LatencyStats
import TestSupport
import XCTest

@testable import PGProbeCore

/// Runs an async probe and collects its outcomes.
func collect(_ options: QueryProbeOptions) async throws -> [QueryOutcome] {
    let box = OutcomeCollector()
    try await QueryProbe(options: options).run { await box.add($0) }
    return await box.outcomes
}

actor OutcomeCollector {
    var outcomes: [QueryOutcome] = []
    func add(_ outcome: QueryOutcome) { outcomes.append(outcome) }
}

func freeLoopbackPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

final class QueryProbeTests: ClusterTestCase {
    func dsn() throws -> DSN {
        try DSN(parsing: cluster().dsn)
    }

    func testQuery200TimesAgainstARealServer() async throws {
        let outcomes = try await collect(QueryProbeOptions(dsn: try dsn(), query: "SELECT 1", count: 200, intervalNanos: 0))
        var statistics = QueryStatistics()
        for outcome in outcomes { _ = statistics.add(outcome) }
        XCTAssertEqual(outcomes.map(\.index), Array(0..<200))
        XCTAssertEqual(outcomes.filter { !$0.succeeded }.map { $0.failure ?? "" }, [])
        let summary = statistics.summary
        XCTAssertEqual(summary.count, 200)
        XCTAssertEqual(summary.failed, 0)
        XCTAssertEqual(summary.latency_s.count, 200)
        XCTAssertGreaterThan(summary.latency_s.min, 0)
        XCTAssertLessThan(summary.latency_s.p50, 0.05, "a local SELECT 1 takes well under 50 ms")
        XCTAssertLessThanOrEqual(summary.latency_s.min, summary.latency_s.p50)
        XCTAssertLessThanOrEqual(summary.latency_s.p50, summary.latency_s.p99)
        XCTAssertLessThanOrEqual(summary.latency_s.p99, summary.latency_s.max)
        XCTAssertGreaterThan(summary.latency_s.stddev, 0)

        // The summary file has exactly the documented keys.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pgprobe-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try writeSummaryJSON(summary, to: path)
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        XCTAssertEqual(Set(object.keys), ["count", "failed", "latency_s"])
        let latency = object["latency_s"] as! [String: Any]
        XCTAssertTrue(Set(["min", "max", "mean", "stddev", "p50", "p90", "p99", "p999"]).isSubset(of: Set(latency.keys)))
        XCTAssertEqual(try JSONDecoder().decode(QuerySummary.self, from: Data(contentsOf: URL(fileURLWithPath: path))), summary)
    }

    func testRowsAreReadToTheEnd() async throws {
        let outcomes = try await collect(
            QueryProbeOptions(dsn: try dsn(), query: "SELECT g, repeat('x', 100) FROM generate_series(1, 5000) g", count: 3, intervalNanos: 0))
        XCTAssertEqual(outcomes.filter(\.succeeded).count, 3)
    }

    func testRefusedConnectionIsCountedAndTheProbeCarriesOn() async throws {
        let dsn = DSN(host: "127.0.0.1", port: freeLoopbackPort(), user: "postgres")
        let outcomes = try await collect(QueryProbeOptions(dsn: dsn, count: 3, intervalNanos: 10_000_000))
        XCTAssertEqual(outcomes.count, 3)
        for outcome in outcomes {
            XCTAssertFalse(outcome.succeeded)
            XCTAssertTrue(outcome.failure?.contains("connect") == true, outcome.failure ?? "")
            XCTAssertTrue(outcome.failure?.lowercased().contains("refused") == true, outcome.failure ?? "")
        }
    }

    func testUnknownDatabaseStopsWithAClearMessage() async throws {
        var dsn = try dsn()
        dsn.database = "no_such_database"
        do {
            _ = try await collect(QueryProbeOptions(dsn: dsn, count: 3, intervalNanos: 0))
            XCTFail("expected a fatal login error")
        } catch let error as QueryProbeFatalError {
            XCTAssertTrue(error.description.contains("no_such_database"), error.description)
            XCTAssertTrue(error.description.contains("3D000"), error.description)
        }
    }

    func testServerErrorIsCountedAndTheConnectionKept() async throws {
        let outcomes = try await collect(QueryProbeOptions(dsn: try dsn(), query: "SELEC 1", count: 3, intervalNanos: 0))
        XCTAssertEqual(outcomes.count, 3)
        for outcome in outcomes {
            XCTAssertTrue(outcome.failure?.contains("syntax error") == true, outcome.failure ?? "")
            XCTAssertTrue(outcome.failure?.contains("42601") == true, outcome.failure ?? "")
        }
    }

    func testServerRestartMidProbe() async throws {
        let dsn = try dsn()
        let cluster = try self.cluster()
        let probe = Task { try await collect(QueryProbeOptions(dsn: dsn, count: 160, intervalNanos: 50_000_000)) }
        try await Task.sleep(nanoseconds: 700_000_000)
        try cluster.stop()
        try await Task.sleep(nanoseconds: 300_000_000)
        try cluster.start()
        let outcomes = try await probe.value
        // 160 × 50 ms outlasts a restart even when a loaded machine makes it slow.
        XCTAssertEqual(outcomes.count, 160)
        let firstFailure = try XCTUnwrap(outcomes.firstIndex { !$0.succeeded }, "the restart cost no query?")
        XCTAssertGreaterThan(firstFailure, 0, "queries before the restart succeed")
        let lastFailure = outcomes.lastIndex { !$0.succeeded }!
        XCTAssertLessThan(lastFailure, 159, "the probe reconnects after the restart")
        XCTAssertTrue(outcomes[(lastFailure + 1)...].allSatisfy(\.succeeded))
    }
}
