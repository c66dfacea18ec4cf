import LatencyStats
import LiveMetrics
import NIOCore

/// `--metrics` for pgprobe: the probe's outcomes, counted on one event loop. The probe posts
/// each outcome (one message per query, nothing shared); a scrape reads the counts there.
/// `pgprobe failover` feeds its operations the same way (answered: a query; no answer: an error).
public final class QueryMetrics: Sendable {
    public static let exported: [Metric] = [.queries, .errors, .queryLatency]

    private struct Tally {
        var queries = 0
        var errors = 0
        var latency = ExponentialBuckets()
    }

    private let tally: NIOLoopBoundBox<Tally>

    public init(on loop: any EventLoop) {
        tally = .makeBoxSendingValue(Tally(), eventLoop: loop)
    }

    public var loop: any EventLoop { tally.eventLoop }

    public func record(_ outcome: QueryOutcome) { record(latencyNanos: outcome.latencyNanos) }

    /// An answered statement (its latency), or a failed one (nil).
    public func record(latencyNanos: Int64?) {
        let tally = tally
        tally.eventLoop.execute {
            if let latencyNanos {
                tally.value.queries += 1
                tally.value.latency.record(nanos: latencyNanos)
            } else {
                tally.value.errors += 1
            }
        }
    }

    public func snapshot() -> EventLoopFuture<MetricsSnapshot> {
        let tally = tally
        return tally.eventLoop.submit {
            var snapshot = MetricsSnapshot()
            snapshot.count(.queries, tally.value.queries)
            snapshot.count(.errors, tally.value.errors)
            snapshot.histogram(.queryLatency, tally.value.latency)
            return snapshot
        }
    }
}
