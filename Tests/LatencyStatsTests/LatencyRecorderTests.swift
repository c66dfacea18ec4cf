import Foundation
import LatencyStats
import XCTest

final class LatencyRecorderTests: XCTestCase {
    func testHandComputedStatistics() {
        var r = LatencyRecorder()
        for ms in [1, 2, 3, 4, 5] as [Int64] { r.record(nanos: ms * 1_000_000) }
        let s = r.summary
        XCTAssertEqual(s.count, 5)
        XCTAssertEqual(s.min, 0.001, accuracy: 1e-12)
        XCTAssertEqual(s.max, 0.005, accuracy: 1e-12)
        XCTAssertEqual(s.mean, 0.003, accuracy: 1e-12)
        // Sample standard deviation: sqrt(((−2)²+(−1)²+0+1²+2²)/4) ms = sqrt(2.5) ms.
        XCTAssertEqual(s.stddev, 2.5.squareRoot() / 1000, accuracy: 1e-12)
        XCTAssertEqual(s.p50, 0.003, accuracy: 1e-6)
        XCTAssertEqual(s.p90, 0.005, accuracy: 1e-6)
        XCTAssertEqual(s.p99, 0.005, accuracy: 1e-6)
    }

    func testPercentilesOfAUniformMillion() {
        var r = LatencyRecorder()
        // 1..10000 µs: p50 = 5000 µs, p90 = 9000 µs, p99 = 9900 µs, p99.9 = 9990 µs.
        for us in 1...10_000 as ClosedRange<Int64> { r.record(nanos: us * 1000) }
        let s = r.summary
        XCTAssertEqual(s.p50, 0.005, accuracy: 1e-6)
        XCTAssertEqual(s.p90, 0.009, accuracy: 1e-6)
        XCTAssertEqual(s.p99, 0.0099, accuracy: 1e-6)
        XCTAssertEqual(s.p999, 0.00999, accuracy: 1e-6)
        XCTAssertEqual(s.mean, 0.0050005, accuracy: 1e-12)
    }

    func testLargeValuesKeepSmallRelativeError() {
        var r = LatencyRecorder()
        r.record(nanos: 736_839_000)
        XCTAssertEqual(r.summary.p50, 0.736839, accuracy: 0.736839 * 1e-4)
        XCTAssertEqual(r.summary.max, 0.736839, accuracy: 1e-12)
    }

    func testMergeEqualsRecordingEverythingInOne() {
        var a = LatencyRecorder(), b = LatencyRecorder(), all = LatencyRecorder()
        for i in 0..<1000 as Range<Int64> {
            let value = (i * 7919) % 50_000_000 + 1000
            if i % 3 == 0 { a.record(nanos: value) } else { b.record(nanos: value) }
            all.record(nanos: value)
        }
        a.merge(b)
        let merged = a.summary, direct = all.summary
        XCTAssertEqual(merged.count, direct.count)
        XCTAssertEqual(merged.min, direct.min)
        XCTAssertEqual(merged.max, direct.max)
        XCTAssertEqual(merged.mean, direct.mean, accuracy: 1e-12)
        XCTAssertEqual(merged.stddev, direct.stddev, accuracy: 1e-9)
        XCTAssertEqual(merged.p99, direct.p99)
    }

    /// A reset interval recorder (kept buckets) gives what a fresh one gives, and what it merged
    /// into earlier is untouched.
    func testResetEqualsAFreshRecorderAndLeavesMergedTotalsAlone() {
        var interval = LatencyRecorder(), total = LatencyRecorder()
        for us in [5, 700_000, 3] as [Int64] { interval.record(nanos: us * 1000) }
        total.merge(interval)
        interval.reset()
        XCTAssertEqual(interval.summary, .empty)
        var fresh = LatencyRecorder()
        for us in [2, 4, 6] as [Int64] {
            interval.record(nanos: us * 1000)
            fresh.record(nanos: us * 1000)
        }
        XCTAssertEqual(interval.summary, fresh.summary)
        XCTAssertEqual(total.summary.count, 3)
        XCTAssertEqual(total.summary.max, 0.7, accuracy: 1e-12)
    }

    func testEmptyAndNegative() {
        XCTAssertEqual(LatencyRecorder().summary, .empty)
        var r = LatencyRecorder()
        r.record(nanos: -2_000_000)
        r.record(nanos: 2_000_000)
        XCTAssertEqual(r.negativeCount, 1)
        XCTAssertEqual(r.summary.min, -0.002, accuracy: 1e-12)
        XCTAssertEqual(r.summary.mean, 0, accuracy: 1e-12)
    }

    func testSummaryJSONKeys() throws {
        var r = LatencyRecorder()
        r.record(nanos: 1000)
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(r.summary)) as! [String: Any]
        XCTAssertEqual(Set(json.keys), ["count", "min", "max", "mean", "stddev", "p50", "p90", "p99", "p999"])
    }

    func testFixedFormatting() {
        XCTAssertEqual(Fixed.format(0.7352581, decimals: 6), "0.735258")
        XCTAssertEqual(Fixed.format(26.7, decimals: 6), "26.700000")
        XCTAssertEqual(Fixed.format(-0.0000004, decimals: 6), "0.000000")
        XCTAssertEqual(Fixed.format(-1.5, decimals: 1), "-1.5")
    }
}
