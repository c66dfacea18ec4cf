import LatencyStats
import XCTest

final class LatencyHistogramTests: XCTestCase {
    private func recorder(_ nanos: [Int64]) -> LatencyRecorder {
        var recorder = LatencyRecorder()
        for value in nanos { recorder.record(nanos: value) }
        return recorder
    }

    func testEncodedHistogramReadsBackToTheSameCounts() throws {
        let values = (0..<5_000).map { Int64(($0 * 7919) % 250_000_000 + 1_000) }
        let histogram = recorder(values).latencyHistogram
        let bytes = histogram.encoded()
        let decoded = try LatencyHistogram(decoding: bytes)
        XCTAssertEqual(decoded, histogram)
        XCTAssertEqual(decoded.totalCount, 5_000)
        for p in [50.0, 90, 99, 99.9, 100] {
            XCTAssertEqual(decoded.seconds(atPercentile: p), histogram.seconds(atPercentile: p), "p\(p)")
        }
        // Sparse: far smaller than the counts array.
        XCTAssertLessThan(bytes.count, 5_000 * 4)
    }

    func testPercentilesOfMergedIntervalsAreThoseOfAllSamples() throws {
        // Two intervals with very different latencies: averaging their p99s would be wrong.
        let fast = recorder((0..<990).map { _ in 1_000_000 })
        let slow = recorder((0..<10).map { _ in 500_000_000 })
        var merged = try LatencyHistogram(decoding: fast.latencyHistogram.encoded())
        merged.merge(try LatencyHistogram(decoding: slow.latencyHistogram.encoded()))
        var all = fast
        all.merge(slow)
        XCTAssertEqual(merged, all.latencyHistogram)
        XCTAssertEqual(merged.seconds(atPercentile: 99) ?? 0, 0.001, accuracy: 0.000_01)
        XCTAssertEqual(merged.seconds(atPercentile: 99.5) ?? 0, 0.5, accuracy: 0.001)
    }

    func testDamagedBytesAreAnErrorNotACrash() {
        let good = recorder([1_000, 2_000_000, 3_000_000_000]).latencyHistogram.encoded()
        XCTAssertThrowsError(try LatencyHistogram(decoding: [UInt8]("garbage".utf8)))
        XCTAssertThrowsError(try LatencyHistogram(decoding: good.dropLast()))
        XCTAssertThrowsError(try LatencyHistogram(decoding: good + [0]))
        XCTAssertThrowsError(try LatencyHistogram(decoding: [0x56, 0x48, 2, 4, 0, 0]), "unknown version")
        // A huge value, a count overflow, a maximum that is not in the last bucket.
        var huge: [UInt8] = [0x56, 0x48, 1, 4, 0, 1]
        huge += [UInt8](repeating: 0xFF, count: 9) + [0x01, 0x01]
        XCTAssertThrowsError(try LatencyHistogram(decoding: huge))
        let overflow: [UInt8] = [0x56, 0x48, 1, 4, 2, 2, 1] + [UInt8](repeating: 0xFF, count: 9) + [0x01, 1]
            + [UInt8](repeating: 0xFF, count: 9) + [0x01]
        XCTAssertThrowsError(try LatencyHistogram(decoding: overflow))
        XCTAssertThrowsError(try LatencyHistogram(decoding: [0x56, 0x48, 1, 4, 90, 1, 5, 1]), "maximum not in the last bucket")
        XCTAssertEqual(try LatencyHistogram(decoding: LatencyHistogram().encoded()).totalCount, 0)
    }

    func testPercentileDistributionIsHgrmText() {
        let text = recorder((1...1000).map { Int64($0) * 1_000_000 }).latencyHistogram.percentileDistribution()
        let lines = text.split(separator: "\n")
        XCTAssertTrue(lines.first?.contains("Value") == true && lines.first?.contains("1/(1-Percentile)") == true, text)
        XCTAssertTrue(text.contains("#[Mean"), text)
        XCTAssertTrue(text.contains("#[Max"), text)
        XCTAssertTrue(text.contains("#[Buckets"), text)
        // Values in milliseconds: the median of 1…1000 ms is about 500.
        XCTAssertTrue(lines.contains { $0.contains("0.500000000000") && $0.contains(" 500.") }, text)
    }
}
