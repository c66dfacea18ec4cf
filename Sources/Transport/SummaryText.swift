import LatencyStats

public enum SenderSummaryText {
    public static func lines(_ s: SenderSummary) -> [String] {
        var lines = [
            "vtp-sender summary: \(s.events) events, \(s.sent) sent, \(s.acked) acked, \(s.nakked) nak'd, "
                + "\(s.failed) failed; \(s.retries) retries, \(s.errors) connection errors"
                + causes(Dictionary(
                    (s.errorsByCause ?? [:]).compactMap { k, v in ConnectionFailure(rawValue: k).map { ($0, v) } },
                    uniquingKeysWith: +))
                + "; max backlog \(s.maxBacklog), "
                + "backlog at end \(s.backlogEnd); \(s.connectionsOpened) connections opened; "
                + "\(Fixed.format(s.durationSeconds, decimals: 3))s"
        ]
        let r = s.ackRoundTrip
        if r.count > 0 {
            lines.append(
                "ack round trip (write -> ack read, sender's monotonic clock; not one-way latency): "
                    + "min/avg/max \(Fixed.milliseconds(r.min))/\(Fixed.milliseconds(r.mean))/\(Fixed.milliseconds(r.max)), "
                    + "stddev \(Fixed.milliseconds(r.stddev)), p50/p90/p99/p99.9 "
                    + [r.p50, r.p90, r.p99, r.p999].map { Fixed.milliseconds($0) }.joined(separator: "/"))
        }
        if let c = s.clockOffset {
            lines.append(
                "clock offset (receiver - sender, NTP-style from \(c.samples ?? 0) acks): "
                    + "\(Fixed.signedMilliseconds(c.offset)) ±\(Fixed.milliseconds(c.errorBound))")
        }
        return lines
    }

    /// " (refused 3, closed before ack 2)", or "" without errors: why connections failed.
    public static func causes(_ counts: [ConnectionFailure: Int]) -> String {
        let parts = counts.filter { $0.value > 0 }.sorted { $0.key < $1.key }.map { "\($0.key.rawValue) \($0.value)" }
        return parts.isEmpty ? "" : " (" + parts.joined(separator: ", ") + ")"
    }
}

public enum ReceiverSummaryText {
    public static func lines(_ s: ReceiverSummary) -> [String] {
        var lines = [
            "vtp-receiver summary: received \(s.received) (unique \(s.unique), duplicates \(s.duplicates), "
                + "missing \(s.missing), out of order \(s.outOfOrder)"
                + (s.sequenceOutOfRange.map { $0 > 0 ? ", sequence out of range \($0)" : "" } ?? "")
                + "), naks \(s.naks), framing errors \(s.framingErrors), "
                + "\(s.connectionsAccepted) connections, \(Fixed.format(s.durationSeconds, decimals: 3))s"
        ]
        lines.append(ReceiverReport.headline(received: s.received, latency: s.latency.count > 0 ? s.latency : nil))
        if s.latency.count > 0 {
            lines.append("  one-way latency (receiver wall clock - sender wall clock): stddev "
                + "\(Fixed.format(s.latency.stddev, decimals: 6))s, " + s.latency.percentileLine)
        }
        if let c = s.clockOffset {
            lines.append(
                "  clock offset (receiver - sender, sender's estimate) \(Fixed.signedMilliseconds(c.offset))"
                    + " ±\(Fixed.milliseconds(c.errorBound)); \(s.withinClockError) latencies within the error bound"
                    + (s.withinClockError > 0 ? " (their sign and size are not trustworthy)" : ""))
        }
        if s.warmupExcluded > 0 { lines.append("  \(s.warmupExcluded) warm-up events excluded from the statistics") }
        if s.negativeLatencies > 0 {
            lines.append("  warning: \(s.negativeLatencies) negative latencies: the hosts' clocks are not synchronised")
        }
        return lines
    }
}
