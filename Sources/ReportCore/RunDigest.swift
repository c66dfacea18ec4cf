import CommandLineKit
import Foundation
import LatencyStats
import ResultsStore

/// A run's numbers for tables and charts: percentiles from its intervals' merged histograms
/// (never averaged percentiles), throughput and loss from what the tool's summary says.
public struct RunDigest: Sendable {
    public var run: StoredRun
    public var intervals: [StoredInterval]
    /// Every interval's histogram merged.
    public var histogram: LatencyHistogram
    /// Intervals whose stored histogram could not be read (left out of `histogram`).
    public var damagedHistograms: Int

    public init(run: StoredRun, intervals: [StoredInterval]) {
        self.run = run
        self.intervals = intervals
        var merged = LatencyHistogram()
        var damaged = 0
        for interval in intervals {
            do { merged.merge(try interval.decodedHistogram()) } catch { damaged += 1 }
        }
        histogram = merged
        damagedHistograms = damaged
    }

    /// What the latency is for this tool, for axis labels and headers.
    public var latencyKind: String { Self.latencyKind(tool: run.tool) }

    public static func latencyKind(tool: String) -> String {
        switch tool {
        case "vtp-sender": return "ack round trip"
        case "vtp-receiver": return "one-way latency"
        case "pgprobe": return "query latency"
        default: return "latency"
        }
    }

    /// Samples in the merged histogram, or the summary's count when there are no intervals.
    public var samples: Int { histogram.totalCount > 0 ? Int(clamping: histogram.totalCount) : (summaryLatency?.count ?? 0) }

    public var p50: Double? { percentile(50) }
    public var p90: Double? { percentile(90) }
    public var p99: Double? { percentile(99) }
    public var p999: Double? { percentile(99.9) }

    /// The exact maximum over the intervals (the histogram's is a bucket edge).
    public var max: Double? {
        intervals.compactMap(\.max).max() ?? summaryLatency?.max
    }

    public func percentile(_ p: Double) -> Double? {
        if histogram.totalCount > 0 { return histogram.seconds(atPercentile: p) }
        // Runs without stored intervals (killed early): the summary's own figures.
        guard let latency = summaryLatency else { return nil }
        switch p {
        case 50: return latency.p50
        case 90: return latency.p90
        case 99: return latency.p99
        case 99.9: return latency.p999
        default: return nil
        }
    }

    /// The summary's latency statistics (`latency_s`, `ack_rtt_s` or `client_s`).
    public var summaryLatency: LatencySummary? {
        let summary = run.summaryObject
        for key in ["latency_s", "ack_rtt_s", "client_s"] {
            guard let object = summary[key] as? [String: Any],
                let data = try? JSONSerialization.data(withJSONObject: object),
                let latency = try? JSONDecoder().decode(LatencySummary.self, from: data), latency.count > 0
            else { continue }
            return latency
        }
        return nil
    }

    public var events: Int { intervals.reduce(0) { $0 + $1.events } }

    /// Seconds from the first interval's start to the last one's end (else the run's own times).
    public var durationSeconds: Double? {
        if let first = intervals.first, let last = intervals.last {
            return last.endedAt.timeIntervalSince(first.startedAt)
        }
        return run.endedAt.map { $0.timeIntervalSince(run.startedAt) }
    }

    /// Events (acks, queries) per second: the tool's own figure, else events over the intervals.
    public var throughput: Double? {
        let summary = run.summaryObject
        for key in ["acked_per_s", "events_per_s", "queries_per_s"] {
            if let value = summary[key] as? Double, value.isFinite { return value }
        }
        guard let duration = durationSeconds, duration > 0, !intervals.isEmpty else { return nil }
        return Double(events) / duration
    }

    public var throughputUnit: String { run.tool == "pgprobe" ? "queries" : "events" }

    /// Lost and total, by the tool's own definition: a sender's unacked events, a receiver's
    /// missing sequence numbers, a probe's failed queries.
    public var lossCounts: (lost: Int, total: Int)? {
        let s = run.summaryObject
        func int(_ key: String) -> Int? { (s[key] as? NSNumber)?.intValue }
        switch run.tool {
        case "vtp-sender":
            guard let events = int("events"), let acked = int("acked") else { return nil }
            return (Swift.max(0, events - acked), events)
        case "vtp-receiver":
            guard let unique = int("unique"), let missing = int("missing") else { return nil }
            return (missing, unique + missing)
        default:
            if let count = int("count"), let failed = int("failed") { return (failed, count) }
            if let matched = int("matched"), let unmatched = int("unmatched") { return (unmatched, matched + unmatched) }
            return nil
        }
    }

    /// 0…1.
    public var loss: Double? {
        guard let (lost, total) = lossCounts, total > 0 else { return nil }
        return Double(lost) / Double(total)
    }

    public var naks: Int { intervals.reduce(0) { $0 + $1.naks } }

    /// The first 8 characters of the id, as `list` shows it.
    public static func shortID(_ id: String) -> String { String(id.prefix(8)) }
}

/// Display helpers shared by tables and charts.
public enum ReportFormat {
    public static func percent(_ fraction: Double?) -> String {
        guard let fraction, fraction.isFinite else { return Human.notAvailable }
        return Human.significant(fraction * 100) + "%"
    }

    /// `+12.5%` against `base` (n/a without both).
    public static func delta(_ value: Double?, from base: Double?) -> String {
        guard let value, let base, value.isFinite, base.isFinite, base != 0 else { return Human.notAvailable }
        let change = (value - base) / abs(base) * 100
        return (change >= 0 ? "+" : "") + Human.significant(change) + "%"
    }

    public static func time(_ date: Date?) -> String {
        guard let date else { return "-" }
        return StoreTime.string(date)
    }

    public static func tags(_ tags: [String: String]) -> String {
        tags.isEmpty ? "-" : tags.keys.sorted().map { "\($0)=\(tags[$0] ?? "")" }.joined(separator: ",")
    }
}
