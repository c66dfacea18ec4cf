import CommandLineKit
import Foundation
import LatencyStats

/// One recorded run: who ran what, where, when, with which settings and tags, and how it ended.
/// `config` and `summary` are JSON objects as text (the summary is what `--summary-json` writes).
public struct StoredRun: Sendable, Equatable {
    /// A UUID, lowercase (the summary JSON's `run_id`).
    public var id: String
    public var tool: String
    public var toolVersion: String
    public var host: String
    public var tester: String
    public var startedAt: Date
    /// nil while the run is going on (or when it was killed).
    public var endedAt: Date?
    public var config: String
    public var tags: [String: String]
    public var summary: String?

    public init(
        id: String, tool: String, toolVersion: String, host: String, tester: String, startedAt: Date,
        endedAt: Date? = nil, config: String = "{}", tags: [String: String] = [:], summary: String? = nil
    ) {
        self.id = id
        self.tool = tool
        self.toolVersion = toolVersion
        self.host = host
        self.tester = tester
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.config = config
        self.tags = tags
        self.summary = summary
    }

    /// The summary as a JSON object (empty when there is none or it is not an object).
    public var summaryObject: [String: Any] { JSONText.object(summary) }
    public var configObject: [String: Any] { JSONText.object(config) }
}

/// One report interval of a run, as stored. Latencies in seconds (nil for an interval without
/// samples); `histogram` is the interval's `LatencyHistogram.encoded()`.
public struct StoredInterval: Sendable, Equatable {
    public var runID: String
    /// 0, 1, 2… in the run.
    public var seq: Int
    public var startedAt: Date
    public var durationSeconds: Double
    public var events: Int
    public var count: Int
    public var min: Double?
    public var mean: Double?
    public var max: Double?
    public var p50: Double?
    public var p90: Double?
    public var p99: Double?
    public var p999: Double?
    public var naks: Int
    public var errors: Int
    public var duplicates: Int?
    public var missing: Int?
    public var backlog: Int?
    public var openConnections: Int?
    public var histogram: [UInt8]

    public init(
        runID: String, seq: Int, startedAt: Date, durationSeconds: Double, events: Int, count: Int, min: Double?,
        mean: Double?, max: Double?, p50: Double?, p90: Double?, p99: Double?, p999: Double?, naks: Int, errors: Int,
        duplicates: Int?, missing: Int?, backlog: Int?, openConnections: Int?, histogram: [UInt8]
    ) {
        self.runID = runID
        self.seq = seq
        self.startedAt = startedAt
        self.durationSeconds = durationSeconds
        self.events = events
        self.count = count
        self.min = min
        self.mean = mean
        self.max = max
        self.p50 = p50
        self.p90 = p90
        self.p99 = p99
        self.p999 = p999
        self.naks = naks
        self.errors = errors
        self.duplicates = duplicates
        self.missing = missing
        self.backlog = backlog
        self.openConnections = openConnections
        self.histogram = histogram
    }

    /// The stored form of what a tool measured (the histogram encoded here, off the tool's loop).
    public init(_ interval: ReportInterval, runID: String, seq: Int) {
        let summary = interval.latency.count > 0 ? interval.latency.summary : nil
        let (elapsed, overflow) = interval.endNanos.subtractingReportingOverflow(interval.startNanos)
        self.init(
            runID: runID, seq: seq, startedAt: Date(timeIntervalSince1970: Double(interval.startNanos) / 1e9),
            durationSeconds: overflow || elapsed < 0 ? 0 : Double(elapsed) / 1e9, events: interval.events,
            count: interval.latency.count, min: summary?.min, mean: summary?.mean, max: summary?.max, p50: summary?.p50,
            p90: summary?.p90, p99: summary?.p99, p999: summary?.p999, naks: interval.naks, errors: interval.errors,
            duplicates: interval.duplicates, missing: interval.missing, backlog: interval.backlog,
            openConnections: interval.openConnections, histogram: interval.latency.latencyHistogram.encoded())
    }

    public var endedAt: Date { startedAt.addingTimeInterval(durationSeconds) }

    /// The interval's histogram; an empty one when the stored bytes are damaged (counted by the
    /// caller through `decodedHistogram()` where that matters).
    public var latencyHistogram: LatencyHistogram { (try? decodedHistogram()) ?? LatencyHistogram() }

    public func decodedHistogram() throws(HistogramDecodingError) -> LatencyHistogram {
        histogram.isEmpty ? LatencyHistogram() : try LatencyHistogram(decoding: histogram)
    }
}

/// Which runs `list`, `compare` and `push` take.
public struct RunFilter: Sendable, Equatable {
    public var tags: [String: String]
    public var tool: String?
    public var since: Date?
    public var ids: [String]

    public init(tags: [String: String] = [:], tool: String? = nil, since: Date? = nil, ids: [String] = []) {
        self.tags = tags
        self.tool = tool
        self.since = since
        self.ids = ids
    }

    public func matches(_ run: StoredRun) -> Bool {
        if let tool, run.tool != tool { return false }
        if let since, run.startedAt < since { return false }
        if !ids.isEmpty, !ids.contains(run.id) { return false }
        return tags.allSatisfy { run.tags[$0.key] == $0.value }
    }
}

/// JSON objects kept as text in the store.
public enum JSONText {
    public static func object(_ text: String?) -> [String: Any] {
        guard let text, let data = text.data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return [:] }
        return object
    }

    /// Sorted keys, so the same object is the same text; `{}` for what cannot be encoded.
    public static func text(_ object: [String: Any]) -> String {
        guard JSONSerialization.isValidJSONObject(object),
            let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
            let text = String(data: data, encoding: .utf8)
        else { return "{}" }
        return text
    }

    public static func tags(_ text: String?) -> [String: String] {
        object(text).compactMapValues { $0 as? String }
    }

    public static func text(tags: [String: String]) -> String { text(tags as [String: Any]) }
}

/// ISO 8601 UTC with milliseconds: how times are written in the SQLite store and in JSON output.
public enum StoreTime {
    public static func string(_ date: Date) -> String { RunMetadata.iso8601(date) }

    public static func date(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }
}
