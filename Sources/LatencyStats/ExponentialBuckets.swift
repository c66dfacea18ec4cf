/// Latency counts in exponential buckets (50 µs, 100 µs, 200 µs, … doubling), the shape of a
/// Prometheus histogram (smokeping_prober's). A plain value: one is owned by whoever records
/// into it (an event loop), copies merge by addition. Recording is an integer division and an
/// increment, cheap enough for every event.
public struct ExponentialBuckets: Sendable, Equatable {
    /// The first bucket's upper bound.
    public static let firstBoundNanos: Int64 = 50_000
    /// 50 µs · 2^19 ≈ 26 s; slower events count only in +Inf.
    public static let bucketCount = 20

    /// Upper bounds in nanoseconds, ascending (each twice the previous).
    public static let boundsNanos: [Int64] = (0..<bucketCount).map { firstBoundNanos << $0 }

    /// Events per bucket (not cumulative); the last slot holds those above every bound.
    public private(set) var counts = [Int](repeating: 0, count: bucketCount + 1)
    public private(set) var count = 0
    /// In seconds; a Double, so no sum of hostile timestamps can overflow and trap.
    public private(set) var sumSeconds = 0.0

    public init() {}

    public mutating func record(nanos: Int64) {
        counts[Self.bucketIndex(nanos: nanos)] += 1
        count += 1
        sumSeconds += Double(nanos) / 1e9
    }

    /// The first bucket whose bound is ≥ `nanos`: bound_k = 50 µs · 2^k, so the index is the bit
    /// length of (nanos − 1) / 50 µs. Zero and negative latencies (clock skew) land in the first.
    @inlinable
    public static func bucketIndex(nanos: Int64) -> Int {
        guard nanos > firstBoundNanos else { return 0 }
        let multiples = UInt64(nanos - 1) / UInt64(firstBoundNanos)
        return min(UInt64.bitWidth - multiples.leadingZeroBitCount, bucketCount)
    }

    public mutating func merge(_ other: ExponentialBuckets) {
        for index in counts.indices { counts[index] += other.counts[index] }
        count += other.count
        sumSeconds += other.sumSeconds
    }

    /// Events at or below each bound (Prometheus' `le`), then the total (`+Inf`).
    public var cumulativeCounts: [Int] {
        var running = 0
        return counts.map { count in
            running += count
            return running
        }
    }
}
