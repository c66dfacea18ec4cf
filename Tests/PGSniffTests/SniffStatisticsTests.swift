import PacketCapture
import XCTest

@testable import PGSniff

final class SniffStatisticsTests: XCTestCase {
    func timing(response: Int64, ack: Int64?, at: Int64, kind: PGRequestKind = .simpleQuery) -> PGQueryTiming {
        PGQueryTiming(
            flow: PGFlowKey(client: Endpoint(IPAddress("127.0.0.1")!, 40_000), server: Endpoint(IPAddress("::1")!, 5432)),
            kind: kind, text: "SELECT\n  1", requestNanos: at, firstResponseNanos: at + response,
            readyNanos: at + response, readyEndSequence: 0, ackNanos: ack.map { at + response + $0 },
            ackPiggybacked: ack == nil, error: nil)
    }

    func testLineCarriesFlowFiguresAndRunningStatistics() {
        var statistics = SniffStatistics()
        _ = statistics.add(timing(response: 100_000, ack: 40_000, at: 0))
        let line = statistics.add(timing(response: 300_000, ack: nil, at: 1_000_000))
        XCTAssertEqual(
            line,
            "127.0.0.1:40000 -> [::1]:5432 simple \"SELECT 1\" response 0.300 ms complete 0.300 ms ack piggybacked"
                + " | response avg 0.200 ms sd 0.141 ms p50/p90/p99/p99.9 0.100/0.300/0.300/0.300 ms"
                + " | ack avg 0.0400 ms sd 0 ms p50/p90/p99/p99.9 0.0400/0.0400/0.0400/0.0400 ms")
        XCTAssertEqual(statistics.response.count, 2)
        XCTAssertEqual(statistics.ackDelay.count, 1)
    }

    func testRequestsPerSecondOverCaptureTime() {
        var statistics = SniffStatistics()
        XCTAssertNil(statistics.requestsPerSecond)
        _ = statistics.add(timing(response: 100_000, ack: nil, at: 0))
        XCTAssertNil(statistics.requestsPerSecond, "one request has no rate")
        _ = statistics.add(timing(response: 100_000, ack: nil, at: 999_900_000))
        // First request at 0, last answer at 1 s: two requests in one second.
        XCTAssertEqual(statistics.requestsPerSecond ?? 0, 2, accuracy: 1e-9)
    }

    func testStartupIsShownButNotCounted() {
        var statistics = SniffStatistics()
        let line = statistics.add(timing(response: 2_000_000, ack: 10_000, at: 0, kind: .startup))
        XCTAssertTrue(line.hasSuffix("(connection set-up, not in the statistics)"), line)
        XCTAssertEqual(statistics.response.count, 0)
    }

    func testPercentilesRefreshEvery250msOfCaptureTimeAfter100Samples() {
        var figure = RunningFigure()
        for index in 0..<100 { figure.record(nanos: 100_000, at: Int64(index)) }
        XCTAssertTrue(figure.line.contains("p50/p90/p99/p99.9 0.100/"), figure.line)
        // 100 slow samples within 1 ms of capture time: average moves, percentiles wait.
        for index in 0..<100 { figure.record(nanos: 900_000, at: 1_000 + Int64(index)) }
        XCTAssertTrue(figure.line.hasPrefix("avg 0.500 ms"), figure.line)
        XCTAssertTrue(figure.line.contains("p50/p90/p99/p99.9 0.100/0.100/"), figure.line)
        figure.record(nanos: 900_000, at: 300_000_000)
        XCTAssertTrue(figure.line.contains("/0.900/0.900/0.900 ms"), figure.line)
        XCTAssertEqual(figure.summary.count, 201)
    }
}
