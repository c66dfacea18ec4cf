/// The one human format for numbers in report lines, across every tool: min/avg/max order,
/// an auto-scaled unit printed once (`0.277 ms`, `1.25 s`), `n/a` for what was not measured.
/// (The receiver's 2012 line keeps its own historic format beside these.)
public enum Human {
    public static let notAvailable = "n/a"

    /// 3 significant digits, in ms below one second and in s from there: `0.0452 ms`,
    /// `0.277 ms`, `250 ms`, `1.25 s`.
    public static func duration(seconds: Double?) -> String {
        guard let seconds, seconds.isFinite else { return notAvailable }
        let unit = DurationUnit.suited(to: abs(seconds))
        return significant(seconds / unit.scale) + " " + unit.symbol
    }

    /// With an explicit sign, for offsets: `+0.032 ms`, `-1.25 s`.
    public static func signedDuration(seconds: Double?) -> String {
        guard let seconds, seconds.isFinite else { return notAvailable }
        return (seconds >= 0 ? "+" : "") + duration(seconds: seconds)
    }

    /// `min/avg/max 0.135/0.277/1.02 ms`: the three in one unit, chosen by the largest.
    public static func minAvgMax(min: Double?, avg: Double?, max: Double?) -> String {
        guard let min, let avg, let max, min.isFinite, avg.isFinite, max.isFinite else {
            return "min/avg/max \(notAvailable)"
        }
        let unit = DurationUnit.suited(to: Swift.max(abs(min), abs(max)))
        let values = [min, avg, max].map { significant($0 / unit.scale) }
        return "min/avg/max " + values.joined(separator: "/") + " " + unit.symbol
    }

    /// `p50/p90/p99/p99.9 0.250/0.251/0.260/0.270 s`, one unit chosen by the largest.
    public static func percentiles(_ labelled: [(String, Double?)]) -> String {
        let labels = labelled.map(\.0).joined(separator: "/")
        let values = labelled.compactMap { $0.1 }.filter(\.isFinite)
        guard values.count == labelled.count, let largest = values.map(abs).max() else {
            return "\(labels) \(notAvailable)"
        }
        let unit = DurationUnit.suited(to: largest)
        return labels + " " + values.map { significant($0 / unit.scale) }.joined(separator: "/") + " " + unit.symbol
    }

    /// `4,812 events/s`, `37.5 queries/s`.
    public static func rate(_ perSecond: Double?, unit: String) -> String {
        guard let perSecond, perSecond.isFinite else { return "\(notAvailable) \(unit)/s" }
        if perSecond >= 100 { return grouped(Int64(perSecond.rounded())) + " \(unit)/s" }
        return significant(perSecond) + " \(unit)/s"
    }

    /// `1,234,567`.
    public static func grouped(_ value: Int64) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (index, character) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return (value < 0 ? "-" : "") + out
    }

    /// 3 significant digits, no exponent: 0.000277 → "0.000277", 12.345 → "12.3", 1234.5 → "1235".
    public static func significant(_ value: Double) -> String {
        guard value.isFinite else { return String(value) }
        if value == 0 { return "0" }
        let magnitude = abs(value)
        var decimals = 2
        var bound = 1.0
        while magnitude < bound, decimals < 12 {
            bound /= 10
            decimals += 1
        }
        if magnitude >= 10 { decimals = 1 }
        if magnitude >= 100 { decimals = 0 }
        // Rounding can carry into the next decade (9.996 → "10.00"): fine, still 3–4 digits.
        return fixed(value, decimals: decimals)
    }

    /// Fixed-point without Foundation (printed often).
    public static func fixed(_ value: Double, decimals: Int) -> String {
        guard value.isFinite else { return String(value) }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9.2e18 else { return String(value) }
        let integer = Int64(scaled)
        let divisor = Int64(scale)
        var text = String(integer / divisor)
        if decimals > 0 {
            let fraction = String(integer % divisor)
            text += "." + String(repeating: "0", count: decimals - fraction.count) + fraction
        }
        return (value < 0 && integer != 0 ? "-" : "") + text
    }
}

enum DurationUnit {
    case milliseconds, seconds

    var scale: Double { self == .milliseconds ? 1e-3 : 1 }
    var symbol: String { self == .milliseconds ? "ms" : "s" }

    /// Two units only, so columns of numbers compare at a glance.
    static func suited(to magnitude: Double) -> DurationUnit {
        magnitude < 1 ? .milliseconds : .seconds
    }
}
