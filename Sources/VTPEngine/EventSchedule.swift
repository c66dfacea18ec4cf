import BenchConfig

/// When each event of a run is due: `burstSize` events at each instant, `intervalNanos` apart
/// (one event per instant spreads them evenly). Shared by the sender's dispatch state and the
/// broadcaster; a pure value.
public struct EventSchedule: Sendable, Equatable {
    /// Time between scheduled instants: between events, or between bursts.
    public let intervalNanos: Int64
    /// Events scheduled at each instant: 1 spreads them evenly; more makes bursts.
    public let burstSize: Int
    public let totalEvents: UInt64

    public init(intervalNanos: Int64, burstSize: Int, totalEvents: UInt64) {
        self.intervalNanos = max(0, intervalNanos)
        self.burstSize = max(1, burstSize)
        self.totalEvents = totalEvents
    }

    /// The run's schedule: bursts of `burst` events `burst_every` apart, else `events` spread over `period`.
    public init(_ options: SenderOptions) {
        let intervalNanos = options.burst > 0
            ? DurationRule.nanoseconds(options.burstEvery)
            : options.events > 0 ? DurationRule.nanoseconds(options.period / Double(options.events)) : 0
        self.init(intervalNanos: intervalNanos, burstSize: options.burst, totalEvents: UInt64(max(0, options.events)))
    }

    /// When event `sequence` is due, after the start: its burst's instant. Saturates instead of
    /// overflowing (a schedule beyond Int64 nanoseconds is never reached).
    public func scheduledOffsetNanos(of sequence: UInt64) -> Int64 {
        let instant = sequence / UInt64(burstSize)
        guard instant <= UInt64(Int64.max) else { return .max }
        let (offset, overflow) = Int64(instant).multipliedReportingOverflow(by: intervalNanos)
        return overflow ? .max : offset
    }

    /// How many events are due `elapsedNanos` after the start (every instant reached, whole).
    public func dueCount(elapsedNanos: Int64) -> UInt64 {
        guard intervalNanos > 0 else { return totalEvents }
        let instants = UInt64(max(0, elapsedNanos) / intervalNanos) + 1
        let (due, overflow) = instants.multipliedReportingOverflow(by: UInt64(burstSize))
        return overflow ? totalEvents : min(totalEvents, due)
    }
}
