import LatencyStats

public enum SenderSummaryText {
    public static func lines(_ s: SenderSummary) -> [String] {
        var lines = [
            "vtp-sender summary: \(s.events) events, \(s.sent) sent, \(s.acked) acked, \(s.nakked) nak'd, "
                + "\(s.failed) failed; \(s.retries) retries, \(s.errors) connection errors; max backlog \(s.maxBacklog), "
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
}
