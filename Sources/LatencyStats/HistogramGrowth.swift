import Histogram

/// Growing and emptying hdrhistogram-swift histograms without its own `resize`/`reset`: those are
/// unspecialised generic code here, about 2,300 instructions per bucket slot when growing (38 M,
/// ~13 ms, per doubling of the range at 4 significant digits) and a generic store per slot when
/// emptying. callgrind found a quarter of vtp-sender's instructions in a 3,000-event per-event run
/// in that `resize`. A fresh histogram's array is built by specialised code and `add` is a plain
/// loop, so growing by copy into a larger one costs a few instructions per slot.
enum HistogramGrowth {
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
}
