import BenchConfig
import CommandLineKit
import LatencyStats

public enum SenderSummaryText {
    /// What the run will do, printed before it starts; the event size is the size sent.
    public static func startLine(_ c: BenchConfiguration, eventSizeSent: Int, runID: String) -> String {
        let schedule = c.burst > 0
            ? "in bursts of \(c.burst) every \(Human.duration(seconds: c.burstEvery))"
            : c.period > 0
            ? "over \(Human.duration(seconds: c.period)) (\(Human.rate(Double(c.events) / c.period, unit: "events")))"
            : "all at once"
        let size = eventSizeSent > c.eventSize
            ? "\(eventSizeSent)-byte events (event_size \(c.eventSize) is below the unpadded event)"
            : "\(eventSizeSent)-byte events"
        let window = c.mode == .persistent ? ", window \(c.window)" : ""
        let targets = c.senderTargets.map(\.description).joined(separator: ", ")
        let failover = c.senderTargets.count > 1 ? " (failover \(c.failover.rawValue))" : ""
        return "vtp-sender: \(c.events) events \(schedule) to \(targets)\(failover), mode \(c.mode.rawValue), "
            + "max_connect \(c.maxConnect) (scope \(c.maxConnectScope.rawValue))\(window), \(size), run \(runID)"
    }

    /// `--broadcast`'s start line.
    public static func broadcastStartLine(_ c: BenchConfiguration, listen: HostAndPort, eventSizeSent: Int, runID: String) -> String {
        let schedule = c.period > 0
            ? "over \(Human.duration(seconds: c.period)) (\(Human.rate(Double(c.events) / c.period, unit: "events")))"
            : "all at once"
        return "vtp-sender: broadcasting \(c.events) events \(schedule) on \(listen) to every subscriber, window \(c.window), "
            + "iamalive after \(Human.duration(seconds: c.iamaliveInterval)) of silence, \(eventSizeSent)-byte events, run \(runID)"
    }

    public static func lines(_ s: SenderSummary) -> [String] {
        let causes = Dictionary(
            (s.errorsByCause ?? [:]).compactMap { k, v in ConnectionFailure(rawValue: k).map { ($0, v) } },
            uniquingKeysWith: +)
        var lines = [
            "vtp-sender summary: \(s.events) events, \(s.sent) sent, \(s.acked) acked, \(s.nakked) nak'd, "
                + "\(s.failed) failed" + ((s.notSent ?? 0) > 0 ? ", \(s.notSent ?? 0) not sent" : "")
                + "; \(s.retries) retries, \(s.errors) connection errors" + Self.causes(causes)
                + "; max backlog \(s.maxBacklog), backlog at end \(s.backlogEnd); "
                + "\(s.connectionsOpened) connections opened; \(Human.duration(seconds: s.durationSeconds)), "
                + "\(Human.rate(s.ackedPerSecond, unit: "events")) acked" + (s.eventBytes.map { "; " + eventSize($0) } ?? "")
        ]
        if let r = s.ackRoundTripStatistics, r.count > 0 {
            lines.append(
                "ack round trip (write -> ack read, sender's monotonic clock; not one-way latency): "
                    + Human.minAvgMax(min: r.min, avg: r.mean, max: r.max) + ", stddev \(Human.duration(seconds: r.stddev)), "
                    + Human.percentiles([("p50", r.p50), ("p90", r.p90), ("p99", r.p99), ("p99.9", r.p999)]))
        }
        if let b = s.bursts {
            let d = b.drainStatistics
            lines.append(
                "bursts: \(b.drained) of \(b.bursts) drained (\(b.size) events every \(Human.duration(seconds: b.everySeconds))); "
                    + "drain time " + Human.minAvgMax(min: d?.min, avg: d?.mean, max: d?.max) + ", "
                    + Human.percentiles([("p50", d?.p50), ("p99", d?.p99)]))
        }
        if let c = s.clockOffset {
            lines.append("clock offset (receiver - sender, NTP-style from \(c.samples ?? 0) acks): " + clockOffset(c))
        }
        if let subscribers = s.subscribers {
            lines.append(
                "broadcast: \(subscribers.count) subscribers, \(s.subscribersDropped ?? 0) dropped; "
                    + "an event is acked once every subscriber connected when it was sent has acked it")
            for b in subscribers {
                lines.append(
                    "  subscriber \(b.peer): sent \(b.sent), acked \(b.acked), nak'd \(b.nakked)"
                        + (b.dropReason.map { ", dropped (\($0))" } ?? ""))
            }
        }
        return lines + failoverLines(s)
    }

    /// With several targets: each failover, what was lost and resent, and each target's counts.
    public static func failoverLines(_ s: SenderSummary) -> [String] {
        guard let targets = s.targets, targets.count > 1 else { return [] }
        var lines = [
            "failover (\(s.failoverMode ?? "ordered")): \(s.failovers?.count ?? 0) failovers"
                + ((s.failbacks?.isEmpty ?? true) ? "" : ", \(s.failbacks?.count ?? 0) failbacks")
                + "; lost \(s.lost ?? 0), \(s.duplicatesSent ?? 0) duplicates sent"
                + ((s.seenBefore ?? 0) > 0 ? ", \(s.seenBefore ?? 0) nak'd as seen before (delivered)" : "")
        ]
        for f in s.failovers ?? [] {
            lines.append(
                "  \(f.from) -> \(f.to) at \(Human.duration(seconds: f.detectedAtSeconds)) (\(f.cause.rawValue)): "
                    + "\(f.unackedAtFailure) unacked, \(f.resent) resent, RTO \(Human.duration(seconds: f.rtoSeconds))")
        }
        for t in targets {
            lines.append(
                "  \(t.target): sent \(t.sent), acked \(t.acked), nak'd \(t.nakked), failed \(t.failed)"
                    + (t.failures > 0 ? " (\(t.failures) times marked failed)" : ""))
        }
        return lines
    }

    /// " (refused 3, closed before ack 2)", or "" without errors: why connections failed.
    public static func causes(_ counts: [ConnectionFailure: Int]) -> String {
        let parts = counts.filter { $0.value > 0 }.sorted { $0.key < $1.key }.map { "\($0.key.rawValue) \($0.value)" }
        return parts.isEmpty ? "" : " (" + parts.joined(separator: ", ") + ")"
    }

    /// `+0.008 ms ±0.187 ms`.
    public static func clockOffset(_ c: ClockOffsetSummary) -> String {
        (c.offset >= 0 ? "+" : "") + Human.duration(seconds: c.offset) + " ±" + Human.duration(seconds: c.errorBound)
    }

    /// `626-byte events`, or `events of 626-689 bytes` when their sizes differed.
    public static func eventSize(_ bytes: SenderSummary.ByteRange) -> String {
        bytes.min == bytes.max ? "\(bytes.max)-byte events" : "events of \(bytes.min)-\(bytes.max) bytes"
    }
}
