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
            "127.0.0.1:40000 -> [::1]:5432 simple \"SELECT 1\" response 0.000300s complete 0.000300s ack piggybacked"
                + " | response avg 0.000200s sd 0.000141s p50/p90/p99/p99.9 0.000100/0.000300/0.000300/0.000300s"
                + " | ack avg 0.000040s sd 0.000000s p50/p90/p99/p99.9 0.000040/0.000040/0.000040/0.000040s")
        XCTAssertEqual(statistics.response.count, 2)
        XCTAssertEqual(statistics.ackDelay.count, 1)
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
        XCTAssertTrue(figure.line.contains("p50/p90/p99/p99.9 0.000100/"), figure.line)
        // 100 slow samples within 1 ms of capture time: average moves, percentiles wait.
        for index in 0..<100 { figure.record(nanos: 900_000, at: 1_000 + Int64(index)) }
        XCTAssertTrue(figure.line.hasPrefix("avg 0.000500s"), figure.line)
        XCTAssertTrue(figure.line.contains("p50/p90/p99/p99.9 0.000100/0.000100/"), figure.line)
        figure.record(nanos: 900_000, at: 300_000_000)
        XCTAssertTrue(figure.line.contains("/0.000900/0.000900/0.000900s"), figure.line)
        XCTAssertEqual(figure.summary.count, 201)
    }
}
