import Histogram

/// hdrhistogram-swift operations that run here as unspecialised generic code, done by
/// specialised code instead. Its `resize` costs about 2,300 instructions per bucket slot (38 M,
/// ~13 ms, per doubling of the range at 4 significant digits; callgrind found a quarter of
/// vtp-sender's instructions in a 3,000-event per-event run there), `reset` a generic store per
/// slot, and `valueAtPercentile` ~100 instructions per slot walked, per percentile (about 1 ms
/// for one of pgprobe's per-query lines). A fresh histogram's array is built by specialised
/// code, `add` and the recorded-values iterator are inlinable, so growing by copy and reading
/// several percentiles in one pass cost a few instructions per slot.
enum FastHistogram {
    /// An empty histogram with `digits` significant digits covering at least 0…`highest`.
    static func empty(covering highest: UInt64, digits: SignificantDigits) -> Histogram<UInt64> {
        var histogram = Histogram<UInt64>(
            lowestDiscernibleValue: 1, highestTrackableValue: Swift.max(2, highest), numberOfSignificantValueDigits: digits)
        histogram.autoResize = true
        return histogram
    }

    /// Makes `histogram` able to record `value` without its slow resize: when `value` is out of
    /// range, the counts move into one covering at least 4× the old range (fewer copies as a
    /// run's latencies climb).
    static func ensure(_ histogram: inout Histogram<UInt64>, covers value: UInt64) {
        guard value > histogram.highestTrackableValue else { return }
        let (quadrupled, overflow) = histogram.highestTrackableValue.multipliedReportingOverflow(by: 4)
        var larger = empty(
            covering: Swift.max(value, overflow ? UInt64.max / 2 : quadrupled), digits: histogram.numberOfSignificantValueDigits)
        larger.add(histogram)
        histogram = larger
    }

    /// Adds `other` into `histogram`, growing it first the fast way.
    static func add(_ other: Histogram<UInt64>, into histogram: inout Histogram<UInt64>) {
        if other.totalCount > 0 { ensure(&histogram, covers: other.max) }
        histogram.add(other)
    }

    /// `histogram` emptied, keeping its range.
    static func emptied(_ histogram: Histogram<UInt64>) -> Histogram<UInt64> {
        empty(covering: histogram.highestTrackableValue, digits: histogram.numberOfSignificantValueDigits)
    }

    /// `valueAtPercentile` for each of `percentiles`, exactly as the library computes it, in one
    /// pass over the recorded values.
    static func values(atPercentiles percentiles: [Double], of histogram: Histogram<UInt64>) -> [UInt64] {
        var results = [UInt64](repeating: 0, count: percentiles.count)
        var targets: [(slot: Int, count: UInt64)] = []
        let total = Double(histogram.totalCount)
        for (slot, percentile) in percentiles.enumerated() {
            if percentile == 0 {
                results[slot] = histogram.min
            } else if percentile >= 100 {
                results[slot] = histogram.maxRecorded
            } else {
                let requested = Swift.min(Swift.max(percentile.nextDown, 0), 100)
                let count = (requested * total / 100).rounded(.up)
                targets.append((slot, count >= 1 && count < 1.8e19 ? UInt64(count) : 1))
            }
        }
        guard !targets.isEmpty else { return results }
        targets.sort { $0.count < $1.count }
        let (minimum, maximum) = (histogram.min, histogram.maxRecorded)
        var next = 0
        var cumulative: UInt64 = 0
        for recorded in histogram.recordedValues() {
            cumulative &+= recorded.count
            while next < targets.count, cumulative >= targets[next].count {
                results[targets[next].slot] = Swift.max(Swift.min(recorded.value, maximum), minimum)
                next += 1
            }
            if next == targets.count { break }
        }
        return results
    }
}
