import Histogram

/// The statistics every vtpbench tool reports, in seconds.
/// Keys match the `latency_s` / `ack_rtt_s` objects of the summary JSON files.
public struct LatencySummary: Codable, Sendable, Equatable {
    public var count: Int
    public var min: Double
    public var max: Double
    public var mean: Double
    /// Sample standard deviation (n − 1); 0 for fewer than two samples.
    public var stddev: Double
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var p999: Double

    public init(
        count: Int, min: Double, max: Double, mean: Double, stddev: Double, p50: Double, p90: Double,
        p99: Double, p999: Double
    ) {
        self.count = count
        self.min = min
        self.max = max
        self.mean = mean
        self.stddev = stddev
        self.p50 = p50
        self.p90 = p90
        self.p99 = p99
        self.p999 = p999
    }

    public static let empty = LatencySummary(
        count: 0, min: 0, max: 0, mean: 0, stddev: 0, p50: 0, p90: 0, p99: 0, p999: 0)
}

/// Records latencies given in nanoseconds.
///
/// Count, min, max, mean and standard deviation are exact (Welford's running
/// moments on the nanosecond values). Percentiles come from an HdrHistogram at
/// microsecond resolution: exact to 1 µs up to ~32 ms and within 0.01% above.
/// Negative values (clock skew between hosts) are kept in the moments and counted,
/// and enter the histogram as 0, since a histogram cannot hold them.
public struct LatencyRecorder: Sendable {
    private var histogram: Histogram<UInt64>
    public private(set) var count = 0
    public private(set) var negativeCount = 0
    private var minNanos = Int64.max
    private var maxNanos = Int64.min
    private var meanNanos = 0.0
    private var m2 = 0.0

    public init() {
        histogram = Histogram<UInt64>(numberOfSignificantValueDigits: .four)
        histogram.autoResize = true
    }

    public mutating func record(nanos: Int64) {
        count += 1
        if nanos < 0 { negativeCount += 1 }
        if nanos < minNanos { minNanos = nanos }
        if nanos > maxNanos { maxNanos = nanos }
        let value = Double(nanos)
        let delta = value - meanNanos
        meanNanos += delta / Double(count)
        m2 += delta * (value - meanNanos)
        // Nearest microsecond; not `(nanos + 500) / 1000`, which overflows near Int64.max
        // (latencies derive from timestamps a peer sends).
        let micros = nanos <= 0 ? 0 : UInt64(nanos / 1000 + (nanos % 1000 >= 500 ? 1 : 0))
        FastHistogram.ensure(&histogram, covers: micros)
        _ = histogram.record(micros)
    }

    /// Adds another recorder's samples (e.g. an interval into the cumulative totals).
    public mutating func merge(_ other: LatencyRecorder) {
        guard other.count > 0 else { return }
        guard count > 0 else {
            self = other
            return
        }
        let total = Double(count + other.count)
        let delta = other.meanNanos - meanNanos
        let mergedMean = meanNanos + delta * Double(other.count) / total
        m2 += other.m2 + delta * delta * Double(count) * Double(other.count) / total
        meanNanos = mergedMean
        count += other.count
        negativeCount += other.negativeCount
        minNanos = Swift.min(minNanos, other.minNanos)
        maxNanos = Swift.max(maxNanos, other.maxNanos)
        FastHistogram.add(other.histogram, into: &histogram)
    }

    /// Empties the recorder but keeps the histogram's grown bucket array: an interval recorder
    /// reset every report would otherwise regrow it, bucket range by bucket range, each interval.
    public mutating func reset() {
        histogram = FastHistogram.emptied(histogram)
        count = 0
        negativeCount = 0
        minNanos = .max
        maxNanos = .min
        meanNanos = 0
        m2 = 0
    }

    /// The percentile histogram (µs buckets), for storing and merging.
    public var latencyHistogram: LatencyHistogram { LatencyHistogram(histogram) }

    public var summary: LatencySummary {
        guard count > 0 else { return .empty }
        let minSeconds = Double(minNanos) / 1e9
        let maxSeconds = Double(maxNanos) / 1e9
        // Histogram buckets report their upper edge; keep percentiles inside the exact range.
        let micros = FastHistogram.values(atPercentiles: [50, 90, 99, 99.9], of: histogram)
        func percentile(_ slot: Int) -> Double {
            Swift.min(Swift.max(Double(micros[slot]) / 1e6, Swift.max(minSeconds, 0)), maxSeconds)
        }
        return LatencySummary(
            count: count, min: minSeconds, max: maxSeconds, mean: meanNanos / 1e9,
            stddev: count > 1 ? (m2 / Double(count - 1)).squareRoot() / 1e9 : 0,
            p50: percentile(0), p90: percentile(1), p99: percentile(2), p999: percentile(3))
    }
}
