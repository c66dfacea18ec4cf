import LatencyStats

/// `vtp-receiver --summary-json`. The issue-defined keys come first; the rest are extras.
public struct ReceiverSummary: Codable, Sendable, Equatable {
    public var received: Int
    public var unique: Int
    public var duplicates: Int
    public var missing: Int
    public var outOfOrder: Int
    public var naks: Int
    public var latency: LatencySummary
    /// Events received during `--warmup-seconds`: counted, not in `latency_s`.
    public var warmupExcluded: Int
    public var connectionsAccepted: Int
    public var framingErrors: Int
    /// Events whose latency came out negative: the two hosts' clocks disagree.
    public var negativeLatencies: Int
    public var durationSeconds: Double
    /// The sender's latest clock-offset estimate, relayed in its events (nil if none).
    public var clockOffset: ClockOffsetSummary?
    /// Latencies whose magnitude is within that estimate's error bound.
    public var withinClockError: Int
    /// Events whose sequence number no sender emits (see `SequenceTracker`): counted here,
    /// not in `unique`/`missing`. Optional so summaries written before it still decode.
    public var sequenceOutOfRange: Int?

    enum CodingKeys: String, CodingKey {
        case received, unique, duplicates, missing, naks
        case clockOffset = "clock_offset_s"
        case withinClockError = "within_clock_error"
        case sequenceOutOfRange = "sequence_out_of_range"
        case outOfOrder = "out_of_order"
        case latency = "latency_s"
        case warmupExcluded = "warmup_excluded"
        case connectionsAccepted = "connections_accepted"
        case framingErrors = "framing_errors"
        case negativeLatencies = "negative_latencies"
        case durationSeconds = "duration_s"
    }
}
