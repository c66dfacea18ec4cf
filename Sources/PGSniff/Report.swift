import LatencyStats

extension LatencySummary {
    /// `avg 0.000300s stddev 0.000040s p50/p90/p99/p99.9 …s`, for lines carrying two figures.
    public var shortLine: String {
        "avg " + Fixed.format(mean, decimals: 6) + "s sd " + Fixed.format(stddev, decimals: 6) + "s " + percentileLine
    }
}

/// Running statistics of what the sniffer infers, and its report lines.
public struct SniffStatistics: Sendable {
    /// Request packet → first response packet.
    public var response = LatencyRecorder()
    /// Request packet → ReadyForQuery packet.
    public var completion = LatencyRecorder()
    /// ReadyForQuery → the client's pure ACK.
    public var ackDelay = LatencyRecorder()
    /// Also count connection set-up (startup → first ReadyForQuery) in the statistics.
    public var includeStartup: Bool

    public init(includeStartup: Bool = false) { self.includeStartup = includeStartup }

    /// Records a timing and returns its report line.
    public mutating func add(_ timing: PGQueryTiming) -> String {
        let counted = timing.kind != .startup || includeStartup
        if counted {
            response.record(nanos: timing.responseNanos)
            completion.record(nanos: timing.completionNanos)
            if let ack = timing.ackDelayNanos { ackDelay.record(nanos: ack) }
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
            line += " | response " + response.summary.shortLine
            if ackDelay.count > 0 { line += " | ack " + ackDelay.summary.shortLine }
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
