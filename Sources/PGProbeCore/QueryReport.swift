import CommandLineKit
import Foundation
import LatencyStats
import PGSniff

/// `pgprobe query --summary-json`: `{"count","failed","latency_s":{…}}`.
/// `count` is the number of attempts, `failed` how many of them failed; `latency_s.count`
/// is the number of successful, timed queries (`latency_s` is null when there was none).
public struct QuerySummary: Codable, Sendable, Equatable {
    public var count: Int
    public var failed: Int
    public var latency_s: LatencySummary

    public init(count: Int, failed: Int, latency_s: LatencySummary) {
        self.count = count
        self.failed = failed
        self.latency_s = latency_s
    }

    enum CodingKeys: String, CodingKey { case count, failed, latency_s }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(count, forKey: .count)
        try c.encode(failed, forKey: .failed)
        try c.encode(latency_s, nullIf: latency_s.count == 0, forKey: .latency_s)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        count = try c.decode(Int.self, forKey: .count)
        failed = try c.decode(Int.self, forKey: .failed)
        latency_s = try c.decode(LatencySummary.self, nullAs: .empty, forKey: .latency_s)
    }
}

/// Running statistics of a query probe and its report lines.
public struct QueryStatistics: Sendable {
    public private(set) var recorder = LatencyRecorder()
    public private(set) var attempts = 0
    public private(set) var failed = 0

    public init() {}

    /// Records an outcome.
    public mutating func record(_ outcome: QueryOutcome) {
        attempts += 1
        if let nanos = outcome.latencyNanos { recorder.record(nanos: nanos) } else { failed += 1 }
    }

    /// The report line of an outcome just recorded (with the running statistics).
    public func line(for outcome: QueryOutcome) -> String {
        let label = "query \(outcome.index + 1)"
        guard let nanos = outcome.latencyNanos else {
            return "\(label) FAILED: \(outcome.failure ?? "unknown error") (failed so far: \(failed))"
        }
        return "\(label) " + Human.duration(seconds: Double(nanos) / 1e9) + " | " + recorder.summary.humanLine
    }

    /// Records an outcome and returns its report line.
    public mutating func add(_ outcome: QueryOutcome) -> String {
        record(outcome)
        return line(for: outcome)
    }

    public var summary: QuerySummary { QuerySummary(count: attempts, failed: failed, latency_s: recorder.summary) }

    /// Attempts per second of wall time.
    public func rate(elapsedSeconds: Double) -> Double? {
        elapsedSeconds > 0 && elapsedSeconds.isFinite ? Double(attempts) / elapsedSeconds : nil
    }

    /// `pgprobe query: 1000 queries, 1000 ok, 0 failed in 1.25 s (800 queries/s); latency n=1,000 min/avg/max …`
    public func finalLine(elapsedSeconds: Double) -> String {
        "pgprobe query: \(attempts) queries, \(attempts - failed) ok, \(failed) failed in "
            + Human.duration(seconds: elapsedSeconds) + " (" + Human.rate(rate(elapsedSeconds: elapsedSeconds), unit: "queries")
            + "); latency " + (recorder.count > 0 ? recorder.summary.humanLine : "n/a (no query succeeded)")
    }
}

/// Writes a summary as pretty, key-sorted JSON (atomically: no half-written file), nothing added.
public func writeSummaryJSON<T: Encodable>(_ value: T, to path: String) throws {
    try SummaryJSON.write(value, to: path)
}
