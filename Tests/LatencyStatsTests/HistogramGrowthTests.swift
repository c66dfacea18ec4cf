import Histogram
import XCTest

@testable import LatencyStats

/// `HistogramGrowth` grows and empties histograms by copy instead of hdrhistogram-swift's slow
/// `resize`/`reset`; what is recorded must read back exactly as with the library's own path.
final class HistogramGrowthTests: XCTestCase {
    /// Values climbing over 8 decades (each growth step) give the library's own counts.
    func testGrowingByCopyKeepsEveryCount() {
        var reference = Histogram<UInt64>(numberOfSignificantValueDigits: .four)
        reference.autoResize = true
        var grown = HistogramGrowth.empty(covering: 2, digits: .four)
        var value: UInt64 = 1
        while value < 100_000_000 {
            let sample = value + (value &* 7919) % (value + 1)  // spread within each step
            reference.record(sample)
            HistogramGrowth.ensure(&grown, covers: sample)
            XCTAssertTrue(grown.record(sample))
            value = value * 3 / 2 + 1
        }
        XCTAssertEqual(grown, reference)
        XCTAssertGreaterThan(grown.highestTrackableValue, 100_000_000)
        for p in [0.0, 50, 90, 99, 99.9, 100] {
            XCTAssertEqual(grown.valueAtPercentile(p), reference.valueAtPercentile(p), "p\(p)")
        }
        XCTAssertEqual(grown.totalCount, reference.totalCount)
        XCTAssertEqual(grown.max, reference.max)
        XCTAssertEqual(grown.min, reference.min)
    }

    /// Merging a wider histogram into a narrow one, and a recorder reset after wide values.
    func testMergeAndResetThroughTheRecorder() {
        var narrow = LatencyRecorder()
        narrow.record(nanos: 5_000)
        var wide = LatencyRecorder()
        for seconds in [1, 10, 100] as [Int64] { wide.record(nanos: seconds * 1_000_000_000) }
        narrow.merge(wide)
        let summary = narrow.summary
        XCTAssertEqual(summary.count, 4)
        XCTAssertEqual(summary.max, 100, accuracy: 0.01)
        XCTAssertEqual(narrow.latencyHistogram.seconds(atPercentile: 100) ?? 0, 100, accuracy: 0.01)
        XCTAssertEqual(narrow.latencyHistogram.seconds(atPercentile: 25) ?? 0, 0.000005, accuracy: 1e-9)

        wide.reset()
        XCTAssertEqual(wide.count, 0)
        XCTAssertEqual(wide.latencyHistogram.totalCount, 0)
        wide.record(nanos: 2_000)
        XCTAssertEqual(wide.latencyHistogram.seconds(atPercentile: 100) ?? 0, 0.000002, accuracy: 1e-9)
    }

    /// A stored histogram with a large maximum reads back equal (decoding sizes it at once).
    func testDecodeOfAWideHistogram() throws {
        var recorder = LatencyRecorder()
        for nanos in [1_000, 40_000_000, 3_000_000_000_000] as [Int64] { recorder.record(nanos: nanos) }
        let histogram = recorder.latencyHistogram
        XCTAssertEqual(try LatencyHistogram(decoding: histogram.encoded()), histogram)
    }
}
