import LatencyStats
import LiveMetrics
import NIOConcurrencyHelpers
import NIOCore

/// `--metrics` for pgprobe: the probe's outcomes, counted under a lock. A message per query to an
/// event loop woke that loop's thread for every query and slowed back-to-back queries on a
/// 2-core machine (the probe's own timed path competed with it), so the probe's task counts in
/// place and a scrape (from the exporter's loop) copies the counts.
/// `pgprobe failover` feeds its operations the same way (answered: a query; no answer: an error).
public final class QueryMetrics: Sendable {
    public static let exported: [Metric] = [.queries, .errors, .queryLatency]

    private struct Tally {
        var queries = 0
        var errors = 0
        var latency = ExponentialBuckets()
    }

    private let tally = NIOLockedValueBox(Tally())

    /// `loop` serves the scrapes.
    public init(on loop: any EventLoop) {
        self.loop = loop
    }

    public let loop: any EventLoop

    public func record(_ outcome: QueryOutcome) { record(latencyNanos: outcome.latencyNanos) }

    /// An answered statement (its latency), or a failed one (nil).
    public func record(latencyNanos: Int64?) {
        tally.withLockedValue { tally in
            if let latencyNanos {
                tally.queries += 1
                tally.latency.record(nanos: latencyNanos)
            } else {
                tally.errors += 1
            }
        }
    }

    public func snapshot() -> EventLoopFuture<MetricsSnapshot> {
        let counted = tally.withLockedValue { $0 }
        var snapshot = MetricsSnapshot()
        snapshot.count(.queries, counted.queries)
        snapshot.count(.errors, counted.errors)
        snapshot.histogram(.queryLatency, counted.latency)
        return loop.makeSucceededFuture(snapshot)
    }
}
