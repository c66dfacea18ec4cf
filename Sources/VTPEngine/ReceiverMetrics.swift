import LiveMetrics

/// What vtp-receiver exports with `--metrics`, read from its merged tallies.
public enum ReceiverMetrics {
    public static let exported: [Metric] = [
        .eventsReceived, .eventLatency, .acks, .naks, .errors, .connectionsAccepted, .openConnections, .duplicates,
        .missing,
    ]

    static func snapshot(totals: ReceiverTally, unreported: ReceiverTally, sequences: SequenceTracker) -> MetricsSnapshot {
        var snapshot = MetricsSnapshot()
        let received = totals.received + unreported.received
        snapshot.count(.eventsReceived, received)
        snapshot.count(.acks, received)  // every parsed event is acked
        snapshot.count(.naks, totals.naks + unreported.naks)
        snapshot.count(.errors, totals.framingErrors + unreported.framingErrors)
        let opened = totals.connectionsOpened + unreported.connectionsOpened
        snapshot.count(.connectionsAccepted, opened)
        snapshot.gauge(.openConnections, Double(opened - totals.connectionsClosed - unreported.connectionsClosed))
        snapshot.count(.duplicates, sequences.duplicates)
        snapshot.gauge(.missing, Double(sequences.missing))
        var latency = totals.latencyBuckets
        latency.merge(unreported.latencyBuckets)
        snapshot.histogram(.eventLatency, latency)
        return snapshot
    }
}
