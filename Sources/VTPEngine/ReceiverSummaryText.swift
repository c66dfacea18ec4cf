import CommandLineKit
import LatencyStats

public enum ReceiverSummaryText {
    public static func lines(_ s: ReceiverSummary) -> [String] {
        var lines = [
            "vtp-receiver summary: received \(s.received) (unique \(s.unique), duplicates \(s.duplicates), "
                + "missing \(s.missing), out of order \(s.outOfOrder)"
                + (s.sequenceOutOfRange.map { $0 > 0 ? ", sequence out of range \($0)" : "" } ?? "")
                + "), naks \(s.naks), framing errors \(s.framingErrors), "
                + "\(s.connectionsAccepted) connections, \(Human.duration(seconds: s.durationSeconds))"
        ]
        let latency = s.latency.count > 0 ? s.latency : nil
        lines.append(ReceiverReport.headline(received: s.received, latency: latency))
        lines.append(
            "  one-way " + ReceiverReport.latencyLine(latency) + ", stddev \(Human.duration(seconds: latency?.stddev))"
                + " (receiver wall clock - sender wall clock); " + Human.rate(s.eventsPerSecond, unit: "events"))
        if let c = s.clockOffset {
            lines.append(
                "  clock offset (receiver - sender, sender's estimate) \(Human.signedDuration(seconds: c.offset))"
                    + " ±\(Human.duration(seconds: c.errorBound)); \(s.withinClockError) latencies within the error bound"
                    + (s.withinClockError > 0 ? " (their sign and size are not trustworthy)" : ""))
        }
        if s.warmupExcluded > 0 { lines.append("  \(s.warmupExcluded) warm-up events excluded from the statistics") }
        if let implausible = s.implausibleTimestamps, implausible > 0 {
            lines.append(
                "  \(implausible) events with an implausible timestamp (latency beyond ±1 day) acked but "
                    + "excluded from the statistics")
        }
        if let untracked = s.untrackedRuns, untracked > 0 {
            lines.append(
                "  \(untracked) events of runs beyond the first \(Human.grouped(Int64(SequenceTracker.maximumRuns))) "
                    + "(or with overlong run IDs): sequence numbers not tracked")
        }
        for broker in s.subscriptions ?? [] { lines.append("  " + subscriptionLine(broker)) }
        if s.negativeLatencies > 0 {
            lines.append("  warning: \(s.negativeLatencies) negative latencies: the hosts' clocks are not synchronised")
        }
        return lines
    }

    /// `via broker 127.0.0.1:8099: 1,000 events (0 duplicates), 1 connection, …`
    public static func subscriptionLine(_ b: SubscriptionSummary) -> String {
        var text = "via broker \(b.broker): \(Human.grouped(Int64(b.events))) events (\(b.duplicates) duplicates"
            + (b.untimedEvents > 0 ? ", \(b.untimedEvents) untimed" : "") + "), "
            + "\(b.connections) connections, \(b.connectFailures) failed connects, \(b.disconnects) lost"
        if b.silentDisconnects > 0 { text += " (\(b.silentDisconnects) silent)" }
        return text + "; answered \(b.iamalivesAnswered) iamalive, \(b.authenticatesAnswered) authenticate"
    }
}
