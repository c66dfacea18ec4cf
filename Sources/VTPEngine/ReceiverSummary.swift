import LatencyStats

/// `vtp-receiver --summary-json`. The issue-defined keys come first; the rest are extras.
/// What was not measured is JSON `null` (`latency_s` without events, `clock_offset_s` without
/// an estimate, `events_per_s` below two events); keys added later are optional so summaries
/// written before them still decode.
public struct ReceiverSummary: Codable, Sendable, Equatable {
    public var received: Int
    public var unique: Int
    public var duplicates: Int
    public var missing: Int
    public var outOfOrder: Int
    public var naks: Int
    /// `LatencySummary.empty` (count 0) when nothing was measured; written as `null`.
    @NullWhenEmpty public var latency: LatencySummary
    /// Events received during `--warmup-seconds`: counted, not in `latency_s`.
    public var warmupExcluded: Int
    public var connectionsAccepted: Int
    public var framingErrors: Int
    /// Events whose latency came out negative: the two hosts' clocks disagree.
    public var negativeLatencies: Int
    public var durationSeconds: Double
    /// The sender's latest clock-offset estimate, relayed in its events (nil if none).
    @NullWhenNil public var clockOffset: ClockOffsetSummary?
    /// Latencies whose magnitude is within that estimate's error bound.
    public var withinClockError: Int
    /// Events whose sequence number no sender emits (see `SequenceTracker`): counted here,
    /// not in `unique`/`missing`.
    public var sequenceOutOfRange: Int?
    /// Events acked whose latency is beyond ±1 day (a broken or hostile timestamp): counted
    /// here, not in `latency_s`.
    public var implausibleTimestamps: Int?
    /// Events of runs beyond the 1,024 the receiver tracks: counted, their sequence numbers
    /// not tracked (not in `unique`/`missing`).
    public var untrackedRuns: Int?
    /// Events per second from the first event to the last.
    @NullWhenNil public var eventsPerSecond: Double?
    /// `--subscribe`: one entry per broker (absent when listening).
    public var subscriptions: [SubscriptionSummary]? = nil

    enum CodingKeys: String, CodingKey {
        case received, unique, duplicates, missing, naks
        case clockOffset = "clock_offset_s"
        case withinClockError = "within_clock_error"
        case sequenceOutOfRange = "sequence_out_of_range"
        case implausibleTimestamps = "implausible_timestamp"
        case untrackedRuns = "untracked_runs"
        case eventsPerSecond = "events_per_s"
        case subscriptions
        case outOfOrder = "out_of_order"
        case latency = "latency_s"
        case warmupExcluded = "warmup_excluded"
        case connectionsAccepted = "connections_accepted"
        case framingErrors = "framing_errors"
        case negativeLatencies = "negative_latencies"
        case durationSeconds = "duration_s"
    }
}

/// A latency summary that is JSON `null` when it holds no samples (and `.empty` when read back).
@propertyWrapper
public struct NullWhenEmpty: Codable, Sendable, Equatable {
    public var wrappedValue: LatencySummary

    public init(wrappedValue: LatencySummary) { self.wrappedValue = wrappedValue }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        wrappedValue = c.decodeNil() ? .empty : try c.decode(LatencySummary.self)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        if wrappedValue.count > 0 { try c.encode(wrappedValue) } else { try c.encodeNil() }
    }
}

/// An optional written as JSON `null` when nil (synthesized coding would leave the key out),
/// and read as nil when `null` or absent.
@propertyWrapper
public struct NullWhenNil<Value: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
    public var wrappedValue: Value?

    public init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        wrappedValue = c.decodeNil() ? nil : try c.decode(Value.self)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        if let wrappedValue { try c.encode(wrappedValue) } else { try c.encodeNil() }
    }
}

extension KeyedDecodingContainer {
    /// Absent reads as nil, as for a plain optional (summaries written before the key existed).
    public func decode<Value>(_ type: NullWhenNil<Value>.Type, forKey key: Key) throws -> NullWhenNil<Value> {
        try decodeIfPresent(type, forKey: key) ?? NullWhenNil(wrappedValue: nil)
    }
}
