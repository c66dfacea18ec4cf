import CommandLineKit
import LatencyStats

/// Ack round trips and the acked rate, as a sending run's report lines show them: per report
/// interval, and over the whole run. A plain value owned by the run's engine.
struct AckProgress {
    private var interval = LatencyRecorder()
    private var total = LatencyRecorder()
    private var last = (nanos: Int64(0), acked: 0)

    /// Rates are measured from here (the run's, or its schedule's, start).
    mutating func restart(atNanos nanos: Int64, acked: Int) { last = (nanos, acked) }

    mutating func record(roundTripNanos: Int64) { interval.record(nanos: roundTripNanos) }

    /// The round trips since the last report (what a stored interval holds).
    var currentInterval: LatencyRecorder { interval }

    /// `1,234 events/s acked | ack round trip min/avg/max …, p99 …` since the last call.
    mutating func reportText(acked: Int, nowNanos: Int64, ackedBy: String = "acked") -> String {
        let rtt = interval.count > 0 ? interval.summary : nil
        total.merge(interval)
        interval.reset()
        let seconds = Double(nowNanos - last.nanos) / 1e9
        let rate = seconds > 0 ? Double(acked - last.acked) / seconds : nil
        last = (nowNanos, acked)
        return "\(Human.rate(rate, unit: "events")) \(ackedBy) | ack round trip "
            + Human.minAvgMax(min: rtt?.min, avg: rtt?.mean, max: rtt?.max) + ", " + Human.percentiles([("p99", rtt?.p99)])
    }

    /// Every round trip of the run so far.
    var all: LatencyRecorder {
        var all = total
        all.merge(interval)
        return all
    }

    /// Their statistics (nil: none was measured).
    var overall: LatencySummary? {
        let all = all
        return all.count > 0 ? all.summary : nil
    }
}
