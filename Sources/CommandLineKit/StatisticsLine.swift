extension Human {
    /// One statistics line in the house format:
    /// `n=200 min/avg/max 0.082/0.094/0.864 ms sd 0.040 ms p50/p90/p99/p99.9 0.085/0.105/0.307/0.381 ms`;
    /// `n/a` when nothing was measured (count 0), never a row of zeros.
    public static func statistics(
        count: Int, min: Double, avg: Double, max: Double, stddev: Double, p50: Double, p90: Double, p99: Double,
        p999: Double
    ) -> String {
        guard count > 0 else { return notAvailable }
        return "n=\(grouped(Int64(count))) " + minAvgMax(min: min, avg: avg, max: max) + " sd " + duration(seconds: stddev)
            + " " + percentiles([("p50", p50), ("p90", p90), ("p99", p99), ("p99.9", p999)])
    }
}
