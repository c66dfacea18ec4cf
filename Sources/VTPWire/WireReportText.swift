import CommandLineKit
import LatencyStats
import PacketCapture

/// Human-readable lines for `vtp-capture analyze`.
public enum WireReportText {
    public static func lines(_ r: WireAnalysisReport, source: String) -> [String] {
        let c = r.counts
        var lines = [
            "\(source): \(c.packets) packets, \(c.tcpSegments) TCP segments, \(r.connections) connections "
                + "(\(r.handshakes) complete handshakes)",
            "VTP: \(c.frames) frames: \(c.events) events, \(c.acks) acks, \(c.naks) naks; "
                + "\(r.eventsWithoutResponse) events without ack/nak in the capture; "
                + Human.rate(r.eventsPerSecond, unit: "events"),
            "TCP: \(r.retransmittedSegments) retransmitted segments (\(r.retransmittedBytes) bytes), "
                + "\(r.outOfOrderSegments) out-of-order segments, \(r.captureGaps) capture gaps (\(r.gapBytes) bytes lost)",
            c.decode.line,
        ]
        lines.append(stat("wire latency (capture time of last byte - embedded send time)", r.wireLatency))
        lines.append(stat("ack round trip (event last byte -> ack last byte, capture clock)", r.ackRoundTrip))
        lines.append(stat("handshake SYN -> SYN-ACK", r.handshakeSynToSynAck))
        lines.append(stat("handshake SYN-ACK -> ACK", r.handshakeSynAckToAck))
        var skipped: [String] = []
        if c.truncatedPackets > 0 { skipped.append("\(c.truncatedPackets) truncated by the snaplen (capture with -s 0)") }
        if c.malformedPackets > 0 { skipped.append("\(c.malformedPackets) malformed") }
        if c.ipFragments > 0 { skipped.append("\(c.ipFragments) IP fragments") }
        if c.unparsableFrames > 0 { skipped.append("\(c.unparsableFrames) frames that are not VTP XML") }
        if c.framingErrors > 0 { skipped.append("\(c.framingErrors) streams with framing errors (not VTP?)") }
        if c.eventsWithoutTimestamp > 0 { skipped.append("\(c.eventsWithoutTimestamp) events without a send timestamp") }
        if c.unmatchedResponses > 0 { skipped.append("\(c.unmatchedResponses) acks/naks for events not in the capture") }
        if !skipped.isEmpty { lines.append("note: " + skipped.joined(separator: "; ")) }
        return lines
    }

    public static func stat(_ label: String, _ s: LatencySummary) -> String {
        "\(label): " + s.humanLine
    }
}

extension LatencySummary {
    /// `n=… min/avg/max …/…/… ms sd … ms p50/p90/p99/p99.9 …`, or `n/a` when empty.
    public var humanLine: String {
        Human.statistics(
            count: count, min: min, avg: mean, max: max, stddev: stddev, p50: p50, p90: p90, p99: p99, p999: p999)
    }
}
