import CommandLineKit
import LatencyStats

extension LatencySummary {
    /// `n=… min/avg/max …/…/… ms sd … ms p50/p90/p99/p99.9 …`, or `n/a` when empty.
    public var humanLine: String {
        Human.statistics(
            count: count, min: min, avg: mean, max: max, stddev: stddev, p50: p50, p90: p90, p99: p99, p999: p999)
    }

    /// `p50/p90/p99/p99.9 …/…/…/… ms`
    var humanPercentiles: String {
        guard count > 0 else { return "p50/p90/p99/p99.9 \(Human.notAvailable)" }
        return Human.percentiles([("p50", p50), ("p90", p90), ("p99", p99), ("p99.9", p999)])
    }
}

/// Exact running count, mean and sample standard deviation (Welford), O(1) per sample.
public struct RunningMoments: Sendable {
    public private(set) var count = 0
    private var mean = 0.0
    private var m2 = 0.0

    public init() {}

    public mutating func add(_ value: Double) {
        count += 1
        let delta = value - mean
        mean += delta / Double(count)
        m2 += delta * (value - mean)
    }

    public var average: Double { mean }
    /// Sample standard deviation (n − 1); 0 below two samples.
    public var standardDeviation: Double { count > 1 ? (m2 / Double(count - 1)).squareRoot() : 0 }
}

/// A recorder whose report line stays cheap at tens of thousands of samples per second:
/// the average and standard deviation are exact on every line, while the percentiles (an
/// HdrHistogram walk costing milliseconds) are recomputed for each of the first 100 samples
/// and then at most every 250 ms of capture time. Capture time, not wall time, so that a
/// pcap file always gives the same lines. Final summaries are always exact.
public struct RunningFigure: Sendable {
    public private(set) var recorder = LatencyRecorder()
    private var moments = RunningMoments()
    private var percentiles = LatencySummary.empty
    private var percentilesAt: Int64 = .min
    static let percentileRefreshNanos: Int64 = 250_000_000

    public init() {}

    public var count: Int { recorder.count }
    public var summary: LatencySummary { recorder.summary }

    /// `at`: the sample's capture time (ns), which paces the percentile refresh.
    public mutating func record(nanos: Int64, at captureNanos: Int64) {
        recorder.record(nanos: nanos)
        moments.add(Double(nanos) / 1e9)
        if count <= 100 || captureNanos &- percentilesAt >= Self.percentileRefreshNanos {
            percentiles = recorder.summary
            percentilesAt = captureNanos
        }
    }

    /// `avg 0.300 ms sd 0.0400 ms p50/p90/p99/p99.9 …/…/…/… ms`
    public var line: String {
        guard count > 0 else { return Human.notAvailable }
        return "avg " + Human.duration(seconds: moments.average) + " sd "
            + Human.duration(seconds: moments.standardDeviation) + " " + percentiles.humanPercentiles
    }
}

/// Running statistics of what the sniffer infers, and its report lines.
public struct SniffStatistics: Sendable {
    /// Request packet → first response packet.
    public var response = RunningFigure()
    /// Request packet → ReadyForQuery packet.
    public var completion = RunningFigure()
    /// ReadyForQuery → the client's pure ACK.
    public var ackDelay = RunningFigure()
    /// Also count connection set-up (startup → first ReadyForQuery) in the statistics.
    public var includeStartup: Bool
    /// Capture times of the first counted request and of the last counted answer.
    private var firstRequestNanos: Int64?
    private var lastReadyNanos: Int64?

    public init(includeStartup: Bool = false) { self.includeStartup = includeStartup }

    /// Records a timing and returns its report line.
    public mutating func add(_ timing: PGQueryTiming) -> String {
        let counted = timing.kind != .startup || includeStartup
        if counted {
            firstRequestNanos = min(firstRequestNanos ?? timing.requestNanos, timing.requestNanos)
            lastReadyNanos = max(lastReadyNanos ?? timing.readyNanos, timing.readyNanos)
            response.record(nanos: timing.responseNanos, at: timing.readyNanos)
            completion.record(nanos: timing.completionNanos, at: timing.readyNanos)
            if let ack = timing.ackDelayNanos, let at = timing.ackNanos { ackDelay.record(nanos: ack, at: at) }
        }
        var line = "\(timing.flow) \(timing.kind.rawValue)"
        if timing.kind != .startup { line += " \(Self.quoted(timing.text))" }
        line += " response " + Human.duration(seconds: Double(timing.responseNanos) / 1e9)
        line += " complete " + Human.duration(seconds: Double(timing.completionNanos) / 1e9)
        if let ack = timing.ackDelayNanos {
            line += " ack " + Human.duration(seconds: Double(ack) / 1e9)
        } else {
            line += timing.ackPiggybacked ? " ack piggybacked" : " ack none"
        }
        if let error = timing.error { line += " error \(Self.quoted(error))" }
        if counted {
            line += " | response " + response.line
            if ackDelay.count > 0 { line += " | ack " + ackDelay.line }
        } else {
            line += " (connection set-up, not in the statistics)"
        }
        return line
    }

    /// Counted requests per second of capture time, first request to last answer (nil below two).
    public var requestsPerSecond: Double? {
        guard response.count > 1, let first = firstRequestNanos, let last = lastReadyNanos, last > first else { return nil }
        return Double(response.count) / (Double(last - first) / 1e9)
    }

    /// SQL shown on one line: whitespace collapsed, at most 60 characters.
    static func quoted(_ text: String) -> String {
        var flat = ""
        var lastWasSpace = false
        for character in text {
            if character.isWhitespace {
                if !lastWasSpace { flat.append(" ") }
                lastWasSpace = true
            } else {
                flat.append(character)
                lastWasSpace = false
            }
        }
        if flat.count > 60 { flat = String(flat.prefix(57)) + "..." }
        return "\"" + flat + "\""
    }
}
