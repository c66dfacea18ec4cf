import CommandLineKit
import Foundation
import LatencyStats
import ResultsStore

/// The text of `vtp-report list`, `show` and `compare`.
public enum ReportText {
    // MARK: list

    /// One line per run (and a header): id, tool, tester, start, duration, p50/p99 from the summary, tags.
    public static func list(_ runs: [StoredRun]) -> [String] {
        guard !runs.isEmpty else { return ["no runs"] }
        var table = TextTable(
            header: ["run", "tool", "tester", "started (UTC)", "duration", "p50", "p99", "tags"], leftAligned: [0, 1, 2, 3, 7])
        for run in runs {
            let digest = RunDigest(run: run, intervals: [])
            table.rows.append([
                RunDigest.shortID(run.id), run.tool, run.tester, ReportFormat.time(run.startedAt),
                run.endedAt == nil ? "unfinished" : Human.duration(seconds: digest.durationSeconds),
                Human.duration(seconds: digest.summaryLatency?.p50), Human.duration(seconds: digest.summaryLatency?.p99),
                ReportFormat.tags(run.tags),
            ])
        }
        return table.lines
    }

    /// `list --json`: `[{id, tool, tester, started_at, ended_at, tags}]`.
    public static func listJSON(_ runs: [StoredRun]) -> String {
        let array: [[String: Any]] = runs.map { run in
            [
                "id": run.id, "tool": run.tool, "tester": run.tester, "started_at": StoreTime.string(run.startedAt),
                "ended_at": run.endedAt.map { StoreTime.string($0) as Any } ?? NSNull(), "tags": run.tags,
            ]
        }
        let data = (try? JSONSerialization.data(withJSONObject: array, options: [.prettyPrinted, .sortedKeys])) ?? Data("[]".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    // MARK: show

    public static func show(_ digest: RunDigest) -> [String] {
        let run = digest.run
        var lines = [
            "run \(run.id) (\(run.tool) \(run.toolVersion))",
            "  tester \(run.tester), host \(run.host)",
            "  started \(ReportFormat.time(run.startedAt)), "
                + (run.endedAt.map { "ended \(ReportFormat.time($0)), \(Human.duration(seconds: $0.timeIntervalSince(run.startedAt)))" }
                    ?? "not ended (still running, or killed)"),
            "  tags \(ReportFormat.tags(run.tags))",
            "  settings " + settingsLine(run.configObject),
            "  \(digest.latencyKind): \(Human.grouped(Int64(digest.samples))) samples, "
                + Human.minAvgMax(min: digest.summaryLatency?.min, avg: digest.summaryLatency?.mean, max: digest.max) + ", "
                + Human.percentiles([("p50", digest.p50), ("p90", digest.p90), ("p99", digest.p99), ("p99.9", digest.p999)]),
            "  throughput \(Human.rate(digest.throughput, unit: digest.throughputUnit)); loss \(lossText(digest)); naks \(digest.naks)",
        ]
        if let error = run.summaryObject["error"] as? String { lines.append("  error: \(error)") }
        if digest.damagedHistograms > 0 {
            lines.append("  note: \(digest.damagedHistograms) intervals have damaged histograms (left out of the percentiles)")
        }
        guard !digest.intervals.isEmpty else {
            lines.append("  no report intervals stored")
            return lines
        }
        lines.append("intervals (latency: \(digest.latencyKind); missing, backlog, open: at the interval's end):")
        lines += intervalTable(digest).lines.map { "  " + $0 }
        return lines
    }

    static func lossText(_ digest: RunDigest) -> String {
        guard let (lost, total) = digest.lossCounts else { return Human.notAvailable }
        return "\(ReportFormat.percent(digest.loss)) (\(Human.grouped(Int64(lost))) of \(Human.grouped(Int64(total))))"
    }

    static func settingsLine(_ config: [String: Any]) -> String {
        guard !config.isEmpty else { return "-" }
        return config.keys.sorted().map { key in "\(key)=\(config[key].map { "\($0)" } ?? "")" }.joined(separator: ", ")
    }

    public static func intervalTable(_ digest: RunDigest) -> TextTable {
        let start = digest.intervals.first?.startedAt ?? digest.run.startedAt
        var table = TextTable(
            header: ["seq", "at", "length", "events", "p50", "p90", "p99", "max", "naks", "dup", "missing", "backlog", "open"],
            leftAligned: [])
        func optional(_ value: Int?) -> String { value.map { Human.grouped(Int64($0)) } ?? "-" }
        for interval in digest.intervals {
            table.rows.append([
                String(interval.seq), Human.duration(seconds: interval.startedAt.timeIntervalSince(start)),
                Human.duration(seconds: interval.durationSeconds), Human.grouped(Int64(interval.events)),
                Human.duration(seconds: interval.p50), Human.duration(seconds: interval.p90),
                Human.duration(seconds: interval.p99), Human.duration(seconds: interval.max), String(interval.naks),
                optional(interval.duplicates), optional(interval.missing), optional(interval.backlog),
                optional(interval.openConnections),
            ])
        }
        return table
    }

    // MARK: compare

    /// Runs side by side: p50, p99, max, throughput, loss, with each run's change from the first.
    public static func compare(_ digests: [RunDigest]) -> [String] {
        guard let base = digests.first else { return ["no runs"] }
        var header = ["", RunDigest.shortID(base.run.id)]
        for digest in digests.dropFirst() { header += [RunDigest.shortID(digest.run.id), "change"] }
        var table = TextTable(header: header, leftAligned: [0])
        func row(_ name: String, _ value: (RunDigest) -> Double?, _ format: (Double?) -> String, delta: Bool = true) {
            var cells = [name, format(value(base))]
            for digest in digests.dropFirst() {
                cells += [format(value(digest)), delta ? ReportFormat.delta(value(digest), from: value(base)) : ""]
            }
            table.rows.append(cells)
        }
        func words(_ name: String, _ value: (RunDigest) -> String) {
            var cells = [name, value(base)]
            for digest in digests.dropFirst() { cells += [value(digest), ""] }
            table.rows.append(cells)
        }
        words("tool") { $0.run.tool }
        words("tester") { $0.run.tester }
        words("tags") { ReportFormat.tags($0.run.tags) }
        row("samples", { Double($0.samples) }, { $0.map { Human.grouped(Int64($0)) } ?? Human.notAvailable }, delta: false)
        row("p50", \.p50, Human.duration(seconds:))
        row("p99", \.p99, Human.duration(seconds:))
        row("max", \.max, Human.duration(seconds:))
        row("throughput", \.throughput, { Human.rate($0, unit: base.throughputUnit) })
        row("loss", \.loss, ReportFormat.percent)
        return table.lines
    }

    /// A sweep by one tag: a row per (value, tool), percentiles from all its runs' merged histograms.
    public static func compare(by tag: String, _ digests: [RunDigest]) -> [String] {
        let groups = SweepGroup.make(by: tag, digests)
        guard !groups.isEmpty else { return ["no runs tagged \(tag) (vtp-report list shows the tags)"] }
        var table = TextTable(
            header: [tag, "tool", "runs", "samples", "p50", "p99", "max", "throughput", "loss"], leftAligned: [0, 1])
        for group in groups {
            table.rows.append([
                group.value, group.tool, String(group.runs.count), Human.grouped(Int64(group.samples)),
                Human.duration(seconds: group.p50), Human.duration(seconds: group.p99), Human.duration(seconds: group.max),
                Human.rate(group.throughput, unit: group.throughputUnit), ReportFormat.percent(group.loss),
            ])
        }
        return table.lines
    }
}

/// The runs of a sweep that share one value of a tag and a tool, merged.
public struct SweepGroup: Sendable {
    public var tag: String
    public var value: String
    public var tool: String
    public var runs: [RunDigest]
    public var histogram: LatencyHistogram

    public var samples: Int { Int(clamping: histogram.totalCount) }
    public var p50: Double? { histogram.seconds(atPercentile: 50) }
    public var p99: Double? { histogram.seconds(atPercentile: 99) }
    public var max: Double? { runs.compactMap(\.max).max() }
    /// Mean of the runs' throughputs (each run is one repetition at this setting).
    public var throughput: Double? {
        let values = runs.compactMap(\.throughput)
        return values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
    }
    public var throughputUnit: String { runs.first?.throughputUnit ?? "events" }
    /// Lost over total across the runs.
    public var loss: Double? {
        let counts = runs.compactMap(\.lossCounts)
        let total = counts.reduce(0) { $0 + $1.total }
        return counts.isEmpty || total == 0 ? nil : Double(counts.reduce(0) { $0 + $1.lost }) / Double(total)
    }
    /// The tag's value as a number, when it is one (`250ms` counts as 0.25).
    public var numericValue: Double? { Self.number(value) }

    static func number(_ text: String) -> Double? {
        if let value = Double(text) { return value }
        return try? Durations.parseSeconds(text, bareUnit: .seconds)
    }

    /// Groups ordered by tool, then value (numerically when every value is a number).
    public static func make(by tag: String, _ digests: [RunDigest]) -> [SweepGroup] {
        var groups: [String: SweepGroup] = [:]
        for digest in digests {
            guard let value = digest.run.tags[tag] else { continue }
            let key = digest.run.tool + "\u{0}" + value
            var group = groups[key] ?? SweepGroup(tag: tag, value: value, tool: digest.run.tool, runs: [], histogram: LatencyHistogram())
            group.runs.append(digest)
            group.histogram.merge(digest.histogram)
            groups[key] = group
        }
        let numeric = groups.values.allSatisfy { $0.numericValue != nil }
        return groups.values.sorted { a, b in
            if a.tool != b.tool { return a.tool < b.tool }
            if numeric, let x = a.numericValue, let y = b.numericValue, x != y { return x < y }
            return a.value < b.value
        }
    }
}
