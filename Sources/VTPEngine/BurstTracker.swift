import LatencyStats

/// `--burst N --burst-every S`: how long each burst took to drain, from its scheduled instant
/// (every event's timestamp) to the reply to its last event. Pure; fed by the engine.
public struct BurstTracker: Sendable {
    public let burstSize: Int
    public let intervalNanos: Int64
    public let totalEvents: Int
    /// Bursts listed one by one in the summary; later ones count in the totals only.
    public static let listedBursts = 1000

    private struct Progress: Sendable {
        var acked = 0
        var nakked = 0
        var lastReplyOffsetNanos: Int64 = 0
    }
    /// Bursts with replies still to come (few at a time: they drain in order).
    private var open: [Int: Progress] = [:]
    private var listed: [BurstsSummary.Burst] = []
    private var drains = LatencyRecorder()
    private var drained = 0

    public init(burstSize: Int, intervalNanos: Int64, totalEvents: Int) {
        self.burstSize = max(1, burstSize)
        self.intervalNanos = max(0, intervalNanos)
        self.totalEvents = max(0, totalEvents)
    }

    public var burstCount: Int { totalEvents / burstSize + (totalEvents % burstSize == 0 ? 0 : 1) }

    /// Events in burst `index` (the last may be short).
    public func size(of index: Int) -> Int { min(burstSize, max(0, totalEvents - index * burstSize)) }

    /// The reply to event `sequence` arrived `offsetNanos` after the start of the schedule.
    public mutating func replied(sequence: UInt64, accepted: Bool, offsetNanos: Int64) {
        guard sequence < UInt64(totalEvents) else { return }
        let index = Int(sequence / UInt64(burstSize))
        var progress = open[index] ?? Progress()
        if accepted { progress.acked += 1 } else { progress.nakked += 1 }
        progress.lastReplyOffsetNanos = max(progress.lastReplyOffsetNanos, offsetNanos)
        guard progress.acked + progress.nakked == size(of: index) else {
            open[index] = progress
            return
        }
        open[index] = nil
        let (instant, overflow) = Int64(index).multipliedReportingOverflow(by: intervalNanos)
        let drain = overflow ? 0 : max(0, progress.lastReplyOffsetNanos - instant)
        drains.record(nanos: drain)
        drained += 1
        if index < Self.listedBursts {
            listed.append(.init(burst: index, events: size(of: index), acked: progress.acked, nakked: progress.nakked,
                                drainSeconds: Double(drain) / 1e9))
        }
    }

    /// The totals, and bursts that never drained listed with what they got.
    public var summary: BurstsSummary {
        var bursts = listed
        for (index, progress) in open where index < Self.listedBursts {
            bursts.append(.init(burst: index, events: size(of: index), acked: progress.acked, nakked: progress.nakked,
                                drainSeconds: nil))
        }
        bursts.sort { $0.burst < $1.burst }
        return BurstsSummary(
            size: burstSize, everySeconds: Double(intervalNanos) / 1e9, bursts: burstCount, drained: drained,
            drainStatistics: drains.count > 0 ? drains.summary : nil, perBurst: bursts)
    }
}

/// The `bursts` object of the sender's summary JSON.
public struct BurstsSummary: Codable, Sendable, Equatable {
    public struct Burst: Codable, Sendable, Equatable {
        public var burst: Int
        public var events: Int
        public var acked: Int
        public var nakked: Int
        /// From the burst's instant to the reply to its last event; nil: it never drained.
        public var drainSeconds: Double?

        enum CodingKeys: String, CodingKey {
            case burst, events, acked, nakked
            case drainSeconds = "drain_s"
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(burst, forKey: .burst)
            try c.encode(events, forKey: .events)
            try c.encode(acked, forKey: .acked)
            try c.encode(nakked, forKey: .nakked)
            try c.encode(drainSeconds, forKey: .drainSeconds)  // null, not left out
        }
    }

    public var size: Int
    public var everySeconds: Double
    /// Bursts in the schedule.
    public var bursts: Int
    /// Bursts whose every event was acked or nak'd.
    public var drained: Int
    /// Drain times of the drained bursts (nil: none drained).
    public var drainStatistics: LatencySummary?
    /// The first `BurstTracker.listedBursts` bursts that were scheduled and replied to.
    public var perBurst: [Burst]

    enum CodingKeys: String, CodingKey {
        case size, bursts, drained
        case everySeconds = "every_s"
        case drainStatistics = "drain_s"
        case perBurst = "per_burst"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(size, forKey: .size)
        try c.encode(everySeconds, forKey: .everySeconds)
        try c.encode(bursts, forKey: .bursts)
        try c.encode(drained, forKey: .drained)
        try c.encode(drainStatistics, forKey: .drainStatistics)
        try c.encode(perBurst, forKey: .perBurst)
    }
}
