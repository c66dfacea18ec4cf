import LatencyStats

extension LatencySummary {
    /// `avg 0.000300s stddev 0.000040s p50/p90/p99/p99.9 …s`, for lines carrying two figures.
    public var shortLine: String {
        "avg " + Fixed.format(mean, decimals: 6) + "s sd " + Fixed.format(stddev, decimals: 6) + "s " + percentileLine
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

    /// `avg 0.000300s sd 0.000040s p50/p90/p99/p99.9 …s`
    public var line: String {
        "avg " + Fixed.format(moments.average, decimals: 6) + "s sd "
            + Fixed.format(moments.standardDeviation, decimals: 6) + "s " + percentiles.percentileLine
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

    public init(includeStartup: Bool = false) { self.includeStartup = includeStartup }

    /// Records a timing and returns its report line.
    public mutating func add(_ timing: PGQueryTiming) -> String {
        let counted = timing.kind != .startup || includeStartup
        if counted {
            response.record(nanos: timing.responseNanos, at: timing.readyNanos)
            completion.record(nanos: timing.completionNanos, at: timing.readyNanos)
            if let ack = timing.ackDelayNanos, let at = timing.ackNanos { ackDelay.record(nanos: ack, at: at) }
        }
        var line = "\(timing.flow) \(timing.kind.rawValue)"
        if timing.kind != .startup { line += " \(Self.quoted(timing.text))" }
        line += " response " + Fixed.format(Double(timing.responseNanos) / 1e9, decimals: 6) + "s"
        line += " complete " + Fixed.format(Double(timing.completionNanos) / 1e9, decimals: 6) + "s"
        if let ack = timing.ackDelayNanos {
            line += " ack " + Fixed.format(Double(ack) / 1e9, decimals: 6) + "s"
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
