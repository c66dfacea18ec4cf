import CommandLineKit
import Foundation
import LatencyStats

/// One row of a lab run. The issue-defined keys (`delay_ms`, `max_connect`, `mode`, `sent`,
/// `received`, `backlog_end`, `latency_s`) are an interface; the rest are extras. Statistics
/// that were not measured are `null` (never 0). The accounting keys keep the identity of
/// `CaseAccounting`: acked + nakked + in_flight + backlog_end + not_sent = events.
public struct LabRow: Codable, Sendable, Equatable {
    public struct Latency: Codable, Sendable, Equatable {
        public var min: Double
        public var mean: Double
        public var max: Double
        public var p99: Double
        /// Absent in rows written before it was added.
        public var p50: Double?
        public init(min: Double, mean: Double, max: Double, p99: Double, p50: Double? = nil) {
            self.min = min
            self.mean = mean
            self.max = max
            self.p99 = p99
            self.p50 = p50
        }
    }

    /// Latency over every generated event: arrived ones with their latency, the `queued` ones
    /// (not arrived when the sender stopped) with their age then — so every figure is a lower
    /// bound once `queued` > 0.
    public struct QueuedLatency: Codable, Sendable, Equatable {
        public var count: Int
        public var queued: Int
        public var min: Double
        public var mean: Double
        public var max: Double
        public var p50: Double
        public var p99: Double
    }

    /// One burst of a `--burst` case: how long it took to drain (sender: its instant to the
    /// reply to its last event) and the latency of its events that arrived (receiver).
    public struct BurstRow: Codable, Sendable, Equatable {
        public var burst: Int
        public var events: Int
        public var received: Int
        public var drain_s: Double?
        public var latency_s: Latency?

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(burst, forKey: .burst)
            try c.encode(events, forKey: .events)
            try c.encode(received, forKey: .received)
            try c.encode(drain_s, forKey: .drain_s)
            try c.encode(latency_s, forKey: .latency_s)
        }
    }

    public var delay_ms: Double
    public var max_connect: Int
    public var mode: String
    public var max_connect_scope: String
    /// Unacked events allowed per persistent connection (1 for per-event).
    public var window: Int
    /// Events per burst (null: an even rate).
    public var burst_size: Int?
    /// Per burst, in order (null: an even rate).
    public var bursts: [BurstRow]?
    /// Events to generate over the window (rate × duration).
    public var events: Int
    /// Events written at least once (a retried event counts once).
    public var sent: Int
    public var received: Int
    public var acked: Int
    public var nakked: Int
    /// Generated and never answered: in_flight + backlog_end.
    public var failed: Int
    /// On a connection (being set up, written, or waiting for the ack) without an answer.
    public var in_flight: Int
    /// Never scheduled: the run was stopped early.
    public var not_sent: Int
    public var backlog_end: Int
    public var max_backlog: Int
    /// Events that arrived (the receiver's statistics); null when none did.
    public var latency_s: Latency?
    /// Every generated event, queued ones at their age when the sender stopped (a lower bound).
    public var latency_incl_queued_s: QueuedLatency?
    /// Backlog bounded and latency flat over the window (`KeptUp`); null when not judged.
    public var kept_up: Bool?
    /// The figures that decided `kept_up`.
    public var kept_up_detail: String?
    /// The offered rate.
    public var rate_events_s: Double
    /// Events received ÷ the window (compare with `rate_events_s`, which is events ÷ the window;
    /// a partial row divides by the time the sender ran, if shorter).
    public var received_rate_events_s: Double?
    public var ack_rtt_p50_s: Double?
    /// The delay link's own error (scheduled vs actual release), worst of the two directions;
    /// null when the link does not measure it (tc netem).
    public var link_release_error_p50_s: Double?
    public var link_release_error_p99_s: Double?
    public var duration_s: Double
    public var grace_s: Double
    /// False for the partial row of a case stopped by Ctrl-C.
    public var complete: Bool
    public var warnings: [String]

    /// A row from what the two tools reported about one case.
    init(
        labCase: LabCase, rate: Double, duration: Double, grace: Double, intervalNanos: Int64,
        sender: SenderSummaryFile, receiver: ReceiverSummaryFile, timeline: [EventLatency]?,
        linkError: (p50: Double, p99: Double)?, complete: Bool, burstSize: Int? = nil
    ) {
        delay_ms = labCase.delayMs
        max_connect = labCase.maxConnect
        mode = labCase.mode.rawValue
        max_connect_scope = labCase.mode == .persistent ? "-" : labCase.scope.rawValue
        window = labCase.window
        burst_size = burstSize
        events = sender.events
        sent = sender.sent
        received = receiver.received
        acked = sender.acked
        let nakked = sender.nakked ?? 0
        // A complete run generated every event; a stopped one says how many it did not, or they
        // are estimated from when it stopped.
        let notSent =
            sender.not_sent
            ?? (complete
                ? 0
                : CaseAccounting.estimatedNotSent(
                    events: sender.events, acked: sender.acked, nakked: nakked, backlogEnd: sender.backlog_end,
                    intervalNanos: intervalNanos, senderElapsedNanos: LabRunner.nanos(sender.duration_s)))
        let accounting = CaseAccounting(
            events: sender.events, acked: sender.acked, nakked: nakked, backlogEnd: sender.backlog_end, notSent: notSent)
        self.nakked = accounting.nakked
        failed = accounting.failed
        in_flight = accounting.inFlight
        not_sent = accounting.notSent
        backlog_end = sender.backlog_end
        max_backlog = sender.max_backlog
        if let stats = receiver.latency_s, receiver.received > 0, let min = stats.min, let mean = stats.mean,
            let max = stats.max, let p99 = stats.p99
        {
            latency_s = Latency(min: min, mean: mean, max: max, p99: p99, p50: stats.p50)
        }
        rate_events_s = rate
        // A stopped case ran only part of its window.
        let window = complete ? duration : min(duration, sender.duration_s)
        received_rate_events_s = window > 0 ? Double(receiver.received) / window : nil
        ack_rtt_p50_s = sender.acked > 0 ? sender.ack_rtt_s?.p50 : nil
        link_release_error_p50_s = linkError?.p50
        link_release_error_p99_s = linkError?.p99
        duration_s = duration
        grace_s = grace
        self.complete = complete
        warnings = []
        if let timeline {
            latency_incl_queued_s = EventTimeline.summary(timeline)
            if let burstSize {
                // Latency rises through a burst by design: judged by each burst's drain time instead.
                bursts = Self.bursts(
                    timeline: timeline, events: sender.events, size: burstSize, drains: sender.bursts?.per_burst ?? [])
            } else {
                let verdict = KeptUp.judge(
                    backlogEnd: backlog_end, events: events, timeline: timeline, delaySeconds: labCase.delayMs / 1000)
                kept_up = verdict?.keptUp
                kept_up_detail = verdict?.detail
            }
        }
        if let warning = LinkAccuracy.warning(releaseErrorP99: linkError?.p99, delaySeconds: labCase.delayMs / 1000) {
            warnings.append(warning)
        }
    }

    /// A row from figures given directly (tests, and rows written before the per-event data).
    public init(
        labCase: LabCase, events: Int, sent: Int, received: Int, acked: Int, backlogEnd: Int, maxBacklog: Int,
        latency: LatencySummary, ackRoundTripP50: Double, linkErrorP50: Double, linkErrorP99: Double,
        duration: Double, grace: Double, nakked: Int = 0, timeline: [EventLatency]? = nil
    ) {
        self.init(
            labCase: labCase, rate: Double(events) / duration, duration: duration, grace: grace,
            intervalNanos: LabRunner.nanos(duration / Double(max(1, events))),
            sender: SenderSummaryFile(
                events: events, sent: sent, acked: acked, nakked: nakked, failed: nil, not_sent: nil,
                max_backlog: maxBacklog, backlog_end: backlogEnd, duration_s: duration + grace,
                ack_rtt_s: .init(p50: ackRoundTripP50)),
            receiver: ReceiverSummaryFile(
                received: received,
                latency_s: .init(
                    count: latency.count, min: latency.min, mean: latency.mean, max: latency.max, p50: latency.p50,
                    p99: latency.p99)),
            timeline: timeline, linkError: (linkErrorP50, linkErrorP99), complete: true)
    }

    /// Each burst's events (the timeline is in sequence order: index = sequence), their latency
    /// where they arrived, and the sender's drain time.
    static func bursts(timeline: [EventLatency], events: Int, size: Int, drains: [SenderSummaryFile.Bursts.Burst])
        -> [BurstRow]
    {
        let size = max(1, size)
        let drain = Dictionary(drains.map { ($0.burst, $0.drain_s) }, uniquingKeysWith: { first, _ in first })
        return stride(from: 0, to: events, by: size).enumerated().map { index, start in
            let members = timeline.indices.clamped(to: start..<min(events, start + size))
            var recorder = LatencyRecorder()
            for event in timeline[members] where !event.isQueued { recorder.record(nanos: event.nanos) }
            let s = recorder.summary
            return BurstRow(
                burst: index, events: min(size, events - start), received: recorder.count, drain_s: drain[index] ?? nil,
                latency_s: recorder.count > 0 ? Latency(min: s.min, mean: s.mean, max: s.max, p99: s.p99, p50: s.p50) : nil)
        }
    }

    // Written by hand so that what was not measured is `null`, not a missing key.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(delay_ms, forKey: .delay_ms)
        try container.encode(max_connect, forKey: .max_connect)
        try container.encode(mode, forKey: .mode)
        try container.encode(max_connect_scope, forKey: .max_connect_scope)
        try container.encode(window, forKey: .window)
        try container.encode(burst_size, forKey: .burst_size)
        try container.encode(bursts, forKey: .bursts)
        try container.encode(events, forKey: .events)
        try container.encode(sent, forKey: .sent)
        try container.encode(received, forKey: .received)
        try container.encode(acked, forKey: .acked)
        try container.encode(nakked, forKey: .nakked)
        try container.encode(failed, forKey: .failed)
        try container.encode(in_flight, forKey: .in_flight)
        try container.encode(not_sent, forKey: .not_sent)
        try container.encode(backlog_end, forKey: .backlog_end)
        try container.encode(max_backlog, forKey: .max_backlog)
        try container.encode(latency_s, forKey: .latency_s)
        try container.encode(latency_incl_queued_s, forKey: .latency_incl_queued_s)
        try container.encode(kept_up, forKey: .kept_up)
        try container.encode(kept_up_detail, forKey: .kept_up_detail)
        try container.encode(rate_events_s, forKey: .rate_events_s)
        try container.encode(received_rate_events_s, forKey: .received_rate_events_s)
        try container.encode(ack_rtt_p50_s, forKey: .ack_rtt_p50_s)
        try container.encode(link_release_error_p50_s, forKey: .link_release_error_p50_s)
        try container.encode(link_release_error_p99_s, forKey: .link_release_error_p99_s)
        try container.encode(duration_s, forKey: .duration_s)
        try container.encode(grace_s, forKey: .grace_s)
        try container.encode(complete, forKey: .complete)
        try container.encode(warnings, forKey: .warnings)
    }
}

/// The delay link must be much more exact than the delay it emulates, or the lab measures the
/// machine instead of the transport.
public enum LinkAccuracy {
    /// Warn when the link's release error p99 exceeds this percentage of the one-way delay.
    public static let percent = 5
    public static var maximumFractionOfDelay: Double { Double(percent) / 100 }

    public static func warning(releaseErrorP99: Double?, delaySeconds: Double) -> String? {
        guard let p99 = releaseErrorP99, delaySeconds > 0, p99 > maximumFractionOfDelay * delaySeconds else {
            return nil
        }
        return "the delay link's own release error p99 \(Human.duration(seconds: p99)) exceeds "
            + "\(percent)% of the \(Human.duration(seconds: delaySeconds)) delay;"
            + " the machine is too busy for these latencies to be the transport's alone"
    }
}

/// The 2012 benchmark's published figures (two VMs, tc netem 250 ms each way, 46.3 events/s).
public struct OriginalFigure: Sendable, Equatable {
    public var maxConnect: Int
    public var text: String

    public static let at250ms: [OriginalFigure] = [
        OriginalFigure(maxConnect: 1, text: "~55 of ~1,400 arrived after 30 s; max latency 0.74 → 26.7 s, unbounded"),
        OriginalFigure(maxConnect: 30, text: "min/avg/max 0.735/0.737/0.743 s, flat"),
    ]

    /// The original figure matching a row (its semaphore was the `setup` scope, per-event).
    public static func matching(_ row: LabRow) -> OriginalFigure? {
        guard row.delay_ms == 250, row.mode == "per-event" else { return nil }
        return at250ms.first { $0.maxConnect == row.max_connect }
    }
}

public enum LabReport {
    static let header = [
        "delay", "max_connect", "mode", "scope", "events", "sent", "received", "backlog_end", "in_flight", "kept_up",
        "latency (arrived)", "p99", "incl. queued p50/p99",
    ]

    /// A fixed-width table in the one human number format; `withOriginal` adds the 2012 figures
    /// where a row matches.
    public static func table(_ rows: [LabRow], withOriginal: Bool = false) -> String {
        var lines: [[String]] = [header + (withOriginal ? ["2012 original (tc netem, 2 VMs)"] : [])]
        for row in rows {
            var cells = [
                Human.duration(seconds: row.delay_ms / 1000), String(row.max_connect),
                row.window > 1 ? "\(row.mode) W\(row.window)" : row.mode,
                row.max_connect_scope, String(row.events), String(row.sent), String(row.received),
                String(row.backlog_end), String(row.in_flight), keptUpCell(row),
                Human.minAvgMax(min: row.latency_s?.min, avg: row.latency_s?.mean, max: row.latency_s?.max),
                Human.duration(seconds: row.latency_s?.p99), queuedCell(row),
            ]
            if withOriginal {
                cells.append(
                    row.mode == "per-event" && row.max_connect_scope == "setup"
                        ? (OriginalFigure.matching(row)?.text ?? "") : "")
            }
            lines.append(cells)
        }
        return aligned(lines)
    }

    /// Columns padded to their widest cell (the last left as it is).
    static func aligned(_ lines: [[String]]) -> String {
        let columns = lines.first?.count ?? 0
        let widths = (0..<columns).map { column in lines.map { $0[column].count }.max() ?? 0 }
        return lines.map { cells in
            cells.enumerated().map { index, cell in
                index == columns - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n")
    }

    /// `752 ms/801 ms`: p50/p99 without their label.
    static func p50p99(_ p50: Double?, _ p99: Double?) -> String {
        String(Human.percentiles([("p50", p50), ("p99", p99)]).dropFirst("p50/p99 ".count))
    }

    /// One line per burst of the `--burst` rows: drain time and the latency of its events; nil
    /// when no row has bursts.
    public static func burstTable(_ rows: [LabRow]) -> String? {
        let header = ["delay", "max_connect", "mode", "burst", "events", "received", "drain", "latency", "p50/p99"]
        var lines = [header]
        for row in rows {
            for burst in row.bursts ?? [] {
                lines.append([
                    Human.duration(seconds: row.delay_ms / 1000), String(row.max_connect),
                    row.window > 1 ? "\(row.mode) W\(row.window)" : row.mode, String(burst.burst), String(burst.events),
                    String(burst.received), Human.duration(seconds: burst.drain_s),
                    Human.minAvgMax(min: burst.latency_s?.min, avg: burst.latency_s?.mean, max: burst.latency_s?.max),
                    p50p99(burst.latency_s?.p50, burst.latency_s?.p99),
                ])
            }
        }
        return lines.count > 1 ? aligned(lines) : nil
    }

    static func keptUpCell(_ row: LabRow) -> String {
        let verdict = row.kept_up.map { $0 ? "yes" : "no" } ?? Human.notAvailable
        return row.complete ? verdict : verdict + " (partial)"
    }

    static func queuedCell(_ row: LabRow) -> String {
        guard let queued = row.latency_incl_queued_s else { return Human.notAvailable }
        let figures = p50p99(queued.p50, queued.p99)
        return queued.queued > 0 ? "≥ " + figures : figures
    }

    /// One line per case: what was counted, what it took, whether it kept up, and the rate.
    public static func line(_ row: LabRow) -> String {
        var text = "sent \(row.sent), received \(row.received), acked \(row.acked), backlog_end \(row.backlog_end)"
            + ", in_flight \(row.in_flight), failed \(row.failed)"
        if row.not_sent > 0 { text += ", not sent \(row.not_sent)" }
        text += "; latency " + Human.minAvgMax(min: row.latency_s?.min, avg: row.latency_s?.mean, max: row.latency_s?.max)
        text += ", " + Human.percentiles([("p50", row.latency_s?.p50), ("p99", row.latency_s?.p99)])
        if let queued = row.latency_incl_queued_s, queued.queued > 0 {
            text += "; incl. \(queued.queued) queued (≥) "
                + Human.percentiles([("p50", queued.p50), ("p99", queued.p99)])
        }
        text += "; \(Human.rate(row.received_rate_events_s, unit: "events")) received of "
            + Human.rate(row.rate_events_s, unit: "events") + " offered"
        text += "; kept up: " + keptUpCell(row) + (row.kept_up_detail.map { " (\($0))" } ?? "")
        if row.link_release_error_p50_s != nil || row.link_release_error_p99_s != nil {
            text += "; link release error "
                + Human.percentiles([("p50", row.link_release_error_p50_s), ("p99", row.link_release_error_p99_s)])
        }
        return text
    }

    static let csvHeader = [
        "delay_ms", "max_connect", "mode", "max_connect_scope", "events", "sent", "received", "acked", "backlog_end",
        "max_backlog", "latency_min_s", "latency_mean_s", "latency_max_s", "latency_p99_s", "ack_rtt_p50_s",
        "link_release_error_p50_s", "link_release_error_p99_s", "duration_s", "grace_s",
        // Added later, at the end so that readers by position keep working.
        "nakked", "failed", "in_flight", "not_sent", "kept_up", "latency_p50_s", "latency_incl_queued_p50_s",
        "latency_incl_queued_p99_s", "latency_incl_queued_max_s", "queued_at_end", "rate_events_s",
        "received_rate_events_s", "complete",
    ]

    /// Empty fields for what was not measured.
    public static func csv(_ rows: [LabRow]) -> String {
        func number(_ value: Double?) -> String { value.map { Fixed.format($0, decimals: 6) } ?? "" }
        var text = CSV.row(csvHeader) + "\n"
        for row in rows {
            let fields: [String] =
                [
                    String(row.delay_ms), String(row.max_connect), row.mode, row.max_connect_scope, String(row.events),
                    String(row.sent), String(row.received), String(row.acked), String(row.backlog_end),
                    String(row.max_backlog),
                ]
                + [
                    row.latency_s?.min, row.latency_s?.mean, row.latency_s?.max, row.latency_s?.p99, row.ack_rtt_p50_s,
                    row.link_release_error_p50_s, row.link_release_error_p99_s, row.duration_s, row.grace_s,
                ].map(number)
                + [
                    String(row.nakked), String(row.failed), String(row.in_flight), String(row.not_sent),
                    row.kept_up.map { String($0) } ?? "", number(row.latency_s?.p50),
                    number(row.latency_incl_queued_s?.p50), number(row.latency_incl_queued_s?.p99),
                    number(row.latency_incl_queued_s?.max), row.latency_incl_queued_s.map { String($0.queued) } ?? "",
                    number(row.rate_events_s), number(row.received_rate_events_s), String(row.complete),
                ]
            text += CSV.row(fields) + "\n"
        }
        return text
    }

    /// The rows as a JSON array (as always); with `metadata`, every row also carries `run_id`,
    /// `version`, `host`, `started_at` and the sweep's `settings`.
    public static func json(
        _ rows: [LabRow], metadata: RunMetadata? = nil, settings: [String: Any]? = nil
    ) throws -> Data {
        let objects = try rows.map { try SummaryJSON.object($0, metadata: metadata, settings: settings) }
        var data = try JSONSerialization.data(withJSONObject: objects, options: [.prettyPrinted, .sortedKeys])
        data.append(0x0A)
        return data
    }
}
