import BenchConfig
import LatencyStats
import LiveMetrics
import NIOCore

/// The distinct events delivered somewhere: a contiguous prefix plus the ones above it, so
/// memory stays small however many events a run has (targets deliver roughly in order).
struct DeliveredEvents: Sendable, Equatable {
    /// Every sequence below this is delivered.
    private(set) var prefix: UInt64 = 0
    private var above: Set<UInt64> = []
    /// Nak'd by some target, not (yet) delivered by any.
    private var nakked: Set<UInt64> = []

    var count: Int { Int(prefix) + above.count }
    /// Events nak'd by a target and acked by none.
    var nakkedOnly: Int { nakked.count }

    func contains(_ sequence: UInt64) -> Bool { sequence < prefix || above.contains(sequence) }

    mutating func delivered(_ sequence: UInt64) {
        nakked.remove(sequence)
        guard !contains(sequence) else { return }
        above.insert(sequence)
        while above.remove(prefix) != nil { prefix += 1 }
    }

    mutating func nakked(_ sequence: UInt64) {
        if !contains(sequence) { nakked.insert(sequence) }
    }
}

/// `--failover all`: one engine per target (each a whole run: its own connections, back-off,
/// drain), the same events to each. They share this, on the control loop: which events some
/// target delivered, and the other engines, so that once every event is delivered an engine
/// whose target is down stops instead of waiting out its drain timeout.
final class AllTargetsCoordinator {
    let events: Int
    private(set) var tally = DeliveredEvents()
    /// The engines, by target; emptied when the run ends (they hold this: no cycle is left).
    var lanes: [NIOLoopBoundBox<SenderEngine>] = []

    init(events: Int) { self.events = events }

    var everyEventDelivered: Bool { tally.count >= events }

    func record(sequence: UInt64, delivered: Bool) {
        if delivered { tally.delivered(sequence) } else { tally.nakked(sequence) }
    }

    /// Once every event is delivered, engines whose target is failing stop now.
    func check() {
        guard everyEventDelivered else { return }
        for lane in lanes where lane.value.targetIsFailing { lane.value.finish() }
    }

    /// The run's summary from the engines' (one per target, in order).
    func summary(_ lanes: [SenderSummary], roundTrips: LatencyRecorder) -> SenderSummary {
        AllTargetsSummary.combine(lanes, tally: tally, roundTrips: roundTrips)
    }
}

enum AllTargetsSummary {
    /// Top-level counts are per event (delivered when any target acked it); `targets` has each
    /// target's own counts.
    static func combine(_ lanes: [SenderSummary], tally: DeliveredEvents, roundTrips: LatencyRecorder) -> SenderSummary {
        guard var s = lanes.first else { preconditionFailure("a run has at least one target") }
        let notSent = lanes.compactMap(\.notSent).min() ?? 0
        let scheduled = s.events - notSent
        s.sent = lanes.map(\.sent).max() ?? 0  // each sends events in order: the longest prefix
        s.acked = tally.count
        s.nakked = tally.nakkedOnly
        s.failed = max(0, scheduled - s.acked - s.nakked)
        s.notSent = notSent
        s.maxBacklog = lanes.map(\.maxBacklog).max() ?? 0
        s.backlogEnd = lanes.map(\.backlogEnd).max() ?? 0
        s.connectionsOpened = lanes.map(\.connectionsOpened).reduce(0, +)
        s.durationSeconds = lanes.map(\.durationSeconds).max() ?? 0
        s.ackRoundTripStatistics = roundTrips.count > 0 ? roundTrips.summary : nil
        s.retries = lanes.map(\.retries).reduce(0, +)
        s.errors = lanes.map(\.errors).reduce(0, +)
        s.errorsByCause = lanes.compactMap(\.errorsByCause).reduce(into: [:]) { all, one in all.merge(one, uniquingKeysWith: +) }
        let bytes = lanes.compactMap(\.eventBytes)
        s.eventBytes = bytes.isEmpty
            ? nil : SenderSummary.ByteRange(min: bytes.map(\.min).min() ?? 0, max: bytes.map(\.max).max() ?? 0)
        // The estimate from the most acks (each target's clock may differ; one is shown).
        s.clockOffset = lanes.compactMap(\.clockOffset).max { ($0.samples ?? 0) < ($1.samples ?? 0) }
        s.failovers = []
        s.failbacks = []
        s.lost = max(0, scheduled - s.acked)
        s.duplicatesSent = lanes.compactMap(\.duplicatesSent).reduce(0, +)
        s.seenBefore = lanes.compactMap(\.seenBefore).reduce(0, +)
        // Every event was meant for every target: what one did not ack or nak, it failed.
        s.targets = lanes.compactMap { lane in
            lane.targets?.first.map { target in
                var target = target
                target.failed = lane.failed
                return target
            }
        }
        s.failoverMode = FailoverMode.all.rawValue
        return s
    }

    /// Every engine's metrics in one: counters and gauges added, histograms merged.
    static func combine(_ snapshots: [MetricsSnapshot]) -> MetricsSnapshot {
        var all = MetricsSnapshot()
        for snapshot in snapshots {
            for (series, value) in snapshot.counters {
                all.count(series.metric, (all.counters[series] ?? 0) + value, labels: series.labels)
            }
            for (series, value) in snapshot.gauges {
                all.gauge(series.metric, (all.gauges[series] ?? 0) + value, labels: series.labels)
            }
            for (series, buckets) in snapshot.histograms {
                var merged = all.histograms[series] ?? buckets
                if all.histograms[series] != nil { merged.merge(buckets) }
                all.histogram(series.metric, merged, labels: series.labels)
            }
        }
        return all
    }
}
