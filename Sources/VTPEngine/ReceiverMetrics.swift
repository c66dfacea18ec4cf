import LatencyStats
import LiveMetrics

/// What a scrape reads of a tally: its counts and latency buckets, not its HdrHistogram (small
/// to copy off a loop, and the loop's tally stays as it is).
struct ReceiverCounts: Sendable {
    var received: Int
    var naks: Int
    var framingErrors: Int
    var connectionsOpened: Int
    var connectionsClosed: Int
    var latency: ExponentialBuckets

    init(_ tally: ReceiverTally) {
        received = tally.received
        naks = tally.naks
        framingErrors = tally.framingErrors
        connectionsOpened = tally.connectionsOpened
        connectionsClosed = tally.connectionsClosed
        latency = tally.latencyBuckets
    }

    mutating func add(_ other: ReceiverCounts) {
        received += other.received
        naks += other.naks
        framingErrors += other.framingErrors
        connectionsOpened += other.connectionsOpened
        connectionsClosed += other.connectionsClosed
        latency.merge(other.latency)
    }
}

/// What vtp-receiver exports with `--metrics`.
public enum ReceiverMetrics {
    public static let exported: [Metric] = [
        .eventsReceived, .eventLatency, .acks, .naks, .errors, .connectionsAccepted, .openConnections, .duplicates,
        .missing,
    ]

    static func snapshot(_ counts: ReceiverCounts, sequences: SequenceTracker) -> MetricsSnapshot {
        var snapshot = MetricsSnapshot()
        snapshot.count(.eventsReceived, counts.received)
        snapshot.count(.acks, counts.received)  // every parsed event is acked
        snapshot.count(.naks, counts.naks)
        snapshot.count(.errors, counts.framingErrors)
        snapshot.count(.connectionsAccepted, counts.connectionsOpened)
        snapshot.gauge(.openConnections, Double(counts.connectionsOpened - counts.connectionsClosed))
        snapshot.count(.duplicates, sequences.duplicates)
        snapshot.gauge(.missing, Double(sequences.missing))
        snapshot.histogram(.eventLatency, counts.latency)
        return snapshot
    }
}
