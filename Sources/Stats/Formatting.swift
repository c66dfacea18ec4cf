/// Fixed-point formatting without Foundation (report lines are printed often).
public enum Fixed {
    public static func format(_ value: Double, decimals: Int) -> String {
        guard value.isFinite else { return String(value) }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let negative = value < 0
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9.2e18 else { return String(value) }
        let integer = Int64(scaled)
        let divisor = Int64(scale)
        var text = String(integer / divisor)
        if decimals > 0 {
            let fraction = String(integer % divisor)
            text += "." + String(repeating: "0", count: decimals - fraction.count) + fraction
        }
        return (negative && integer != 0 ? "-" : "") + text
    }

    /// Seconds as milliseconds with 3 decimals, e.g. `0.251ms`.
    public static func milliseconds(_ seconds: Double) -> String { format(seconds * 1000, decimals: 3) + "ms" }

    /// Like `milliseconds`, with an explicit sign (clock offsets), e.g. `+0.008ms`.
    public static func signedMilliseconds(_ seconds: Double) -> String {
        (seconds >= 0 ? "+" : "") + milliseconds(seconds)
    }
}

extension LatencySummary {
    /// `p50/p90/p99/p99.9 0.736001/0.737002/0.741003/0.742001s`
    public var percentileLine: String {
        "p50/p90/p99/p99.9 " + [p50, p90, p99, p999].map { Fixed.format($0, decimals: 6) }.joined(separator: "/")
            + "s"
    }
}
