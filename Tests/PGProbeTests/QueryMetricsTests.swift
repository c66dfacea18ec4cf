import LiveMetrics
import NIOPosix
import XCTest

@testable import PGProbeCore

/// `pgprobe query --metrics`: answered queries, failures and the latency histogram.
final class QueryMetricsTests: XCTestCase {
    func testOutcomesBecomeQueriesErrorsAndLatencyBuckets() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let metrics = QueryMetrics(on: group.next())
        metrics.record(QueryOutcome(index: 0, latencyNanos: 300_000, failure: nil, sql: "SELECT 1"))
        metrics.record(QueryOutcome(index: 1, latencyNanos: nil, failure: "connection refused", sql: "SELECT 1"))
        metrics.record(QueryOutcome(index: 2, latencyNanos: 40_000, failure: nil, sql: "SELECT 1"))
        let snapshot = try metrics.snapshot().wait()
        XCTAssertEqual(snapshot.counters[.init(.queries)], 2)
        XCTAssertEqual(snapshot.counters[.init(.errors)], 1)
        let latency = try XCTUnwrap(snapshot.histograms[.init(.queryLatency)])
        XCTAssertEqual(latency.count, 2)
        XCTAssertEqual(latency.cumulativeCounts[0], 1, "40 µs is at or below 50 µs")
        XCTAssertEqual(latency.cumulativeCounts[3], 2, "300 µs is at or below 400 µs")
    }
}
