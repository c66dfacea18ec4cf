import Foundation
import LatencyStats

/// One row of a lab run. The issue-defined keys (`delay_ms`, `max_connect`, `mode`, `sent`,
/// `received`, `backlog_end`, `latency_s`) are an interface; the rest are extras.
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

    public var delay_ms: Double
    public var max_connect: Int
    public var mode: String
    public var max_connect_scope: String
    /// Events generated over the window (rate × duration).
    public var events: Int
    public var sent: Int
    public var received: Int
    public var acked: Int
    public var backlog_end: Int
    public var max_backlog: Int
    public var latency_s: Latency
    public var ack_rtt_p50_s: Double
    /// The delay link's own error (scheduled vs actual release), worst of the two directions.
    public var link_release_error_p50_s: Double
    public var link_release_error_p99_s: Double
    public var duration_s: Double
    public var grace_s: Double

    public init(
        labCase: LabCase, events: Int, sent: Int, received: Int, acked: Int, backlogEnd: Int, maxBacklog: Int,
        latency: LatencySummary, ackRoundTripP50: Double, linkErrorP50: Double, linkErrorP99: Double,
        duration: Double, grace: Double
    ) {
        delay_ms = labCase.delayMs
        max_connect = labCase.maxConnect
        mode = labCase.mode.rawValue
        max_connect_scope = labCase.mode == .persistent ? "-" : labCase.scope.rawValue
        self.events = events
        self.sent = sent
        self.received = received
        self.acked = acked
        backlog_end = backlogEnd
        max_backlog = maxBacklog
        latency_s = Latency(min: latency.min, mean: latency.mean, max: latency.max, p99: latency.p99, p50: latency.p50)
        ack_rtt_p50_s = ackRoundTripP50
        link_release_error_p50_s = linkErrorP50
        link_release_error_p99_s = linkErrorP99
        duration_s = duration
        grace_s = grace
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
        "delay_ms", "max_connect", "mode", "scope", "events", "sent", "received", "backlog_end", "lat_min_s",
        "lat_avg_s", "lat_max_s", "lat_p99_s",
    ]

    /// A fixed-width table; `withOriginal` adds the 2012 figures where a row matches.
    public static func table(_ rows: [LabRow], withOriginal: Bool = false) -> String {
        var lines: [[String]] = [header + (withOriginal ? ["2012 original (tc netem, 2 VMs)"] : [])]
        for row in rows {
            var cells = [
                Fixed.format(row.delay_ms, decimals: row.delay_ms == row.delay_ms.rounded() ? 0 : 1),
                String(row.max_connect), row.mode, row.max_connect_scope, String(row.events), String(row.sent),
                String(row.received), String(row.backlog_end),
            ]
            cells += [row.latency_s.min, row.latency_s.mean, row.latency_s.max, row.latency_s.p99].map {
                Fixed.format($0, decimals: 3)
            }
            if withOriginal { cells.append(row.mode == "per-event" && row.max_connect_scope == "setup"
                ? (OriginalFigure.matching(row)?.text ?? "") : "") }
            lines.append(cells)
        }
        let columns = lines[0].count
        let widths = (0..<columns).map { column in lines.map { $0[column].count }.max() ?? 0 }
        return lines.map { cells in
            cells.enumerated().map { index, cell in
                index == columns - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n")
    }

    public static func csv(_ rows: [LabRow]) -> String {
        var text =
            "delay_ms,max_connect,mode,max_connect_scope,events,sent,received,acked,backlog_end,max_backlog,"
            + "latency_min_s,latency_mean_s,latency_max_s,latency_p99_s,ack_rtt_p50_s,"
            + "link_release_error_p50_s,link_release_error_p99_s,duration_s,grace_s\n"
        for row in rows {
            let fields: [String] = [
                String(row.delay_ms), String(row.max_connect), row.mode, row.max_connect_scope, String(row.events),
                String(row.sent), String(row.received), String(row.acked), String(row.backlog_end),
                String(row.max_backlog),
            ] + [
                row.latency_s.min, row.latency_s.mean, row.latency_s.max, row.latency_s.p99, row.ack_rtt_p50_s,
                row.link_release_error_p50_s, row.link_release_error_p99_s, row.duration_s, row.grace_s,
            ].map { Fixed.format($0, decimals: 6) }
            text += fields.joined(separator: ",") + "\n"
        }
        return text
    }

    public static func json(_ rows: [LabRow]) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var data = try encoder.encode(rows)
        data.append(0x0A)
        return data
    }
}
