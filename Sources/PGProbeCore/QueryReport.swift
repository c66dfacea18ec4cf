import Foundation
import LatencyStats

extension LatencySummary {
    /// `min/max/avg 0.000250/0.000900/0.000300s stddev 0.000040s p50/p90/p99/p99.9 …s`
    public var runningLine: String {
        "min/max/avg " + [min, max, mean].map { Fixed.format($0, decimals: 6) }.joined(separator: "/")
            + "s stddev " + Fixed.format(stddev, decimals: 6) + "s " + percentileLine
    }
}

/// `pgprobe query --summary-json`: `{"count","failed","latency_s":{…}}`.
/// `count` is the number of attempts, `failed` how many of them failed; `latency_s.count`
/// is the number of successful, timed queries.
public struct QuerySummary: Codable, Sendable, Equatable {
    public var count: Int
    public var failed: Int
    public var latency_s: LatencySummary

    public init(count: Int, failed: Int, latency_s: LatencySummary) {
        self.count = count
        self.failed = failed
        self.latency_s = latency_s
    }
}

/// Running statistics of a query probe and its report lines.
public struct QueryStatistics: Sendable {
    public private(set) var recorder = LatencyRecorder()
    public private(set) var attempts = 0
    public private(set) var failed = 0

    public init() {}

    /// Records an outcome and returns its report line.
    public mutating func add(_ outcome: QueryOutcome) -> String {
        attempts += 1
        let label = "query \(outcome.index + 1)"
        guard let nanos = outcome.latencyNanos else {
            failed += 1
            return "\(label) FAILED: \(outcome.failure ?? "unknown error") (failed so far: \(failed))"
        }
        recorder.record(nanos: nanos)
        return "\(label) " + Fixed.format(Double(nanos) / 1e9, decimals: 6) + "s | " + recorder.summary.runningLine
    }

    public var summary: QuerySummary { QuerySummary(count: attempts, failed: failed, latency_s: recorder.summary) }

    public var finalLine: String {
        "pgprobe query: \(attempts) queries, \(attempts - failed) ok, \(failed) failed; latency "
            + (recorder.count > 0 ? recorder.summary.runningLine : "not measured (no query succeeded)")
    }
}

public struct SummaryFileError: Error, CustomStringConvertible {
    public var description: String
}

/// Writes a summary as pretty, key-sorted JSON (atomically: no half-written file).
public func writeSummaryJSON<T: Encodable>(_ value: T, to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    do {
        var data = try encoder.encode(value)
        data.append(0x0A)
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    } catch {
        throw SummaryFileError(description: "cannot write summary JSON to \(path): \(error.localizedDescription)")
    }
}

/// Prints a line and flushes, so report lines reach a pipe as they happen.
public func emit(_ line: String) {
    print(line)
    fflush(nil)  // all C streams; `stdout` itself is a global Swift 6 rejects
}

public func emitError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
