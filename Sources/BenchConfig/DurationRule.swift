import CommandLineKit

/// The accepted range of a duration setting (seconds), for flags and config.json alike.
/// Text is read by the command-line kit's `Durations` (units, finite, not negative, at most a
/// week); this rule adds each setting's own lower bound. Everything later converts seconds to
/// integer nanoseconds, so accepted values are always finite and bounded.
public struct DurationRule: Sendable, Equatable {
    /// Smallest accepted value; `inclusive` says whether it is itself accepted.
    public var minimum: Double
    public var inclusive: Bool
    public var maximum: Double

    /// A week (the kit's limit): far beyond any run, far below Int64 nanoseconds (292 years).
    public static let maximumSeconds: Double = Durations.maximumSeconds
    /// Shorter report intervals only flood the output and starve the event loops.
    public static let minimumReportInterval: Double = 0.1

    public static let reportInterval = DurationRule(
        minimum: minimumReportInterval, inclusive: true, maximum: maximumSeconds)
    /// Connect and ack time-outs, `--stop-after-seconds`.
    public static let positive = DurationRule(minimum: 0, inclusive: false, maximum: maximumSeconds)
    /// `period` (0 = all at once), idle (0 = never) and drain time-outs, `--warmup-seconds`.
    public static let nonNegative = DurationRule(minimum: 0, inclusive: true, maximum: maximumSeconds)

    public func accepts(_ seconds: Double) -> Bool {
        guard seconds.isFinite, seconds <= maximum else { return false }  // also rejects NaN
        return inclusive ? seconds >= minimum : seconds > minimum
    }

    /// What an error message says is expected.
    public var expected: String {
        let limit = "\(Self.format(maximum)) (one week)"
        if minimum == 0 {
            return inclusive
                ? "a number of seconds from 0 to \(limit)" : "a positive number of seconds up to \(limit)"
        }
        return "a number of seconds from \(Self.format(minimum)) (the minimum) to \(limit)"
    }

    /// Seconds from flag or config text (`250ms`, `2s`, `1m`; a bare number is seconds), or nil
    /// when the text is not a duration this rule accepts.
    public func seconds(from text: String) -> Double? {
        guard let seconds = try? Durations.parseSeconds(text, bareUnit: .seconds), accepts(seconds) else { return nil }
        return seconds
    }

    /// "604800" rather than "604800.0"; non-finite values as Swift prints them.
    public static func format(_ seconds: Double) -> String {
        if seconds.isFinite, seconds == seconds.rounded(), abs(seconds) < 1e15 { return String(Int64(seconds)) }
        return String(seconds)
    }

    /// Seconds to integer nanoseconds without trapping: NaN and negatives give 0 and
    /// anything beyond ~31 years is clamped (validated values never get near either).
    public static func nanoseconds(_ seconds: Double) -> Int64 {
        let clampNanos: Int64 = 1_000_000_000_000_000_000
        guard seconds > 0 else { return 0 }  // false for NaN too
        let nanos = seconds * 1e9
        guard nanos < Double(clampNanos) else { return clampNanos }
        return Int64(nanos)
    }
}
