import LatencyStats
import XCTest

/// Latencies come from timestamps a peer sends: any Int64 must be recordable without trapping.
final class ExtremeLatencyTests: XCTestCase {
    func testTheExtremesOfInt64AreRecordedWithoutTrapping() {
        var r = LatencyRecorder()
        for nanos in [Int64.max, Int64.max - 499, Int64.min, 0, 1_000_000] { r.record(nanos: nanos) }
        let s = r.summary
        XCTAssertEqual(s.count, 5)
        XCTAssertEqual(r.negativeCount, 1)
        XCTAssertEqual(s.max, Double(Int64.max) / 1e9)
        XCTAssertEqual(s.min, Double(Int64.min) / 1e9)
        for value in [s.mean, s.stddev, s.p50, s.p90, s.p99, s.p999] { XCTAssertTrue(value.isFinite) }
        XCTAssertEqual(s.p999, s.max, accuracy: s.max * 1e-3, "the top of the histogram holds Int64.max")
        var merged = LatencyRecorder()
        merged.record(nanos: 5)
        merged.merge(r)
        XCTAssertEqual(merged.count, 6)
    }

    func testRoundingToMicrosecondsIsUnchanged() {
        var r = LatencyRecorder()
        for nanos: Int64 in [1_499, 1_500, 2_000_499] { r.record(nanos: nanos) }
        let s = r.summary
        XCTAssertEqual(s.p50, 0.000002, accuracy: 1e-9, "1,500 ns rounds to 2 µs")
        XCTAssertEqual(s.max, 0.002000499, accuracy: 1e-15)
    }
}
