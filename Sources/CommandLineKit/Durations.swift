import ArgumentParser

/// A duration from a flag or a config value: `250ms`, `2s`, `1m`, `500us`, `1h`; a bare number
/// is read in the unit the flag documents (`bareUnit`). Finite, not negative, at most
/// `Durations.maximum`: numbers from users are untrusted, and every later conversion to
/// nanoseconds must be safe.
public enum Durations {
    /// One week: longer than any run, small enough that nanoseconds fit an Int64 many times over.
    public static let maximumSeconds: Double = 7 * 24 * 3600

    public enum Unit: String, Sendable {
        case nanoseconds = "ns", microseconds = "us", milliseconds = "ms", seconds = "s", minutes = "m", hours = "h"

        public var seconds: Double {
            switch self {
            case .nanoseconds: return 1e-9
            case .microseconds: return 1e-6
            case .milliseconds: return 1e-3
            case .seconds: return 1
            case .minutes: return 60
            case .hours: return 3600
            }
        }
    }

    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public var text: String
        public var reason: String
        public var description: String { "\(reason) (got \"\(text)\"; e.g. 250ms, 2s, 1m)" }
    }

    /// Seconds, or a ParseError that says what is wrong.
    public static func parseSeconds(
        _ text: String, bareUnit: Unit, maximumSeconds: Double = maximumSeconds
    ) throws(ParseError) -> Double {
        let trimmed = text.trimmed(of: " \t").lowercased()
        var number = Substring(trimmed)
        var unit = bareUnit
        // Longest suffix first: "ms" before "s", "us"/"µs"/"ns" before "s", "m" last.
        let suffixes: [(String, Unit)] = [
            ("ns", .nanoseconds), ("us", .microseconds), ("µs", .microseconds), ("ms", .milliseconds),
            ("s", .seconds), ("m", .minutes), ("h", .hours),
        ]
        for (suffix, suffixUnit) in suffixes where trimmed.hasSuffix(suffix) {
            number = trimmed.dropLast(suffix.count)
            unit = suffixUnit
            break
        }
        let digits = number.trimmed(of: " \t")
        guard let value = Double(digits), !digits.isEmpty else {
            throw ParseError(text: text, reason: "not a duration")
        }
        guard value.isFinite else { throw ParseError(text: text, reason: "not a finite duration") }
        guard value >= 0 else { throw ParseError(text: text, reason: "a duration cannot be negative") }
        let seconds = value * unit.seconds
        guard seconds <= maximumSeconds else {
            throw ParseError(text: text, reason: "too long: at most \(Human.duration(seconds: maximumSeconds))")
        }
        return seconds
    }
}

extension String {
    fileprivate func trimmed(of set: String) -> String {
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, set.contains(last) { slice = slice.dropLast() }
        return String(slice)
    }
}

extension Substring {
    fileprivate func trimmed(of set: String) -> String { String(self).trimmed(of: set) }
}

/// A flag whose bare number means seconds (`--period 10`, `--period 10s`, `--period 500ms`).
public struct SecondsArgument: ExpressibleByArgument, Sendable, Equatable {
    public var seconds: Double
    public init(seconds: Double) { self.seconds = seconds }
    public init?(argument: String) {
        guard let seconds = try? Durations.parseSeconds(argument, bareUnit: .seconds) else { return nil }
        self.seconds = seconds
    }
    public static var defaultCompletionKind: CompletionKind { .default }
}

/// A flag whose bare number means milliseconds (`--delay-ms 250`, `--delay-ms 0.25s`).
public struct MillisecondsArgument: ExpressibleByArgument, Sendable, Equatable {
    public var seconds: Double
    public var milliseconds: Double { seconds * 1000 }
    public init(seconds: Double) { self.seconds = seconds }
    public init?(argument: String) {
        guard let seconds = try? Durations.parseSeconds(argument, bareUnit: .milliseconds) else { return nil }
        self.seconds = seconds
    }
}
