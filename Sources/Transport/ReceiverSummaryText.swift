import LatencyStats

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
