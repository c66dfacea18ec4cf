import Histogram
import XCTest

@testable import LatencyStats

/// `FastHistogram` grows and empties histograms by copy instead of hdrhistogram-swift's slow
/// `resize`/`reset` and reads percentiles in one pass; everything must read back exactly as
/// with the library's own path.
final class FastHistogramTests: XCTestCase {
    /// Values climbing over 8 decades (each growth step) give the library's own counts.
    func testGrowingByCopyKeepsEveryCount() {
        var reference = Histogram<UInt64>(numberOfSignificantValueDigits: .four)
        reference.autoResize = true
        var grown = FastHistogram.empty(covering: 2, digits: .four)
        var value: UInt64 = 1
        while value < 100_000_000 {
            let sample = value + (value &* 7919) % (value + 1)  // spread within each step
            reference.record(sample)
            FastHistogram.ensure(&grown, covers: sample)
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

    /// One-pass percentiles equal the library's `valueAtPercentile` on histograms of many shapes
    /// (one value, ties, wide spreads, outliers), at the edges (0, 100) and in between.
    func testPercentilesInOnePassMatchTheLibrary() {
        let percentiles = [0, 0.1, 1, 25, 50, 75, 90, 99, 99.9, 99.99, 100]
        var seed: UInt64 = 12_345
        for shape in 0..<60 {
            var histogram = FastHistogram.empty(covering: 2, digits: .four)
            let samples = 1 + shape * 37
            for n in 0..<samples {
                seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407  // LCG: varied, repeatable
                let spread = UInt64(1) << UInt64(shape % 34)
                let value = shape % 5 == 0 ? 250 : 1 + (seed >> 20) % spread + (n % 97 == 0 ? spread * 50 : 0)
                FastHistogram.ensure(&histogram, covers: value)
                histogram.record(value)
            }
            let fast = FastHistogram.values(atPercentiles: percentiles, of: histogram)
            for (slot, p) in percentiles.enumerated() {
                XCTAssertEqual(fast[slot], histogram.valueAtPercentile(p), "shape \(shape), p\(p)")
            }
        }
    }
}
