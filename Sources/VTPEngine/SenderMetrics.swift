import LatencyStats
import LiveMetrics

/// What vtp-sender exports with `--metrics`, read from its dispatch state on the control loop.
public enum SenderMetrics {
    public static let exported: [Metric] = [
        .eventsSent, .acks, .naks, .errors, .backlog, .openConnections, .connectionsOpened, .ackRoundTrip,
    ]

    static func snapshot(_ state: SenderDispatchState, roundTrips: ExponentialBuckets) -> MetricsSnapshot {
        var snapshot = MetricsSnapshot()
        snapshot.count(.eventsSent, state.sent + state.resent)
        snapshot.count(.acks, state.acked)
        snapshot.count(.naks, state.nakked)
        snapshot.count(.errors, state.errors)
        snapshot.gauge(.backlog, Double(state.backlog))
        snapshot.gauge(.openConnections, Double(state.openConnections))
        snapshot.count(.connectionsOpened, state.connectionsOpened)
        snapshot.histogram(.ackRoundTrip, roundTrips)
        return snapshot
    }
}
