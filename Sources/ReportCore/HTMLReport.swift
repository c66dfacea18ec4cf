import CommandLineKit
import Foundation
import LatencyStats
import ResultsStore

/// `vtp-report html`: one self-contained HTML file (inline CSS and SVG, nothing fetched) with,
/// per run, latency over time in SmokePing's style and throughput/backlog over time; for all
/// runs the percentile spectrum overlaid; for a sweep, p50/p99 against the swept tag; and a
/// tester × target matrix of medians. Every chart has its numbers in a table under it.
public struct HTMLReport: Sendable {
    public var digests: [RunDigest]
    public var sweepTag: String?
    public var storeName: String
    public var generatedAt: Date

    public init(digests: [RunDigest], sweepTag: String? = nil, storeName: String = "", generatedAt: Date = Date()) {
        self.digests = digests
        self.sweepTag = sweepTag
        self.storeName = storeName
        self.generatedAt = generatedAt
    }

    public func render() -> String {
        var sections = [summarySection()]
        sections.append(spectrumSection())
        if let sweep = sweepSection() { sections.append(sweep) }
        if let matrix = matrixSection() { sections.append(matrix) }
        for digest in digests {
            sections.append(smokeSection(digest))
            sections.append(throughputSection(digest))
        }
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <link rel="icon" href="data:,">
            <title>vtpbench report: \(HTML.escape(title))</title>
            <style>\(Self.css)</style></head>
            <body>
            <h1>vtpbench report</h1>
            <p class="meta">\(digests.count) runs from \(HTML.escape(storeName.isEmpty ? "the store" : storeName)); generated \(HTML.escape(StoreTime.string(generatedAt))). Latency percentiles over several intervals or runs come from merged HdrHistograms.</p>
            \(sections.joined(separator: "\n"))
            <script>\(Self.script)</script>
            </body></html>

            """
    }

    var title: String {
        digests.count == 1 ? "run \(RunDigest.shortID(digests[0].run.id))" : "\(digests.count) runs"
    }

    // MARK: summary

    func summarySection() -> String {
        let rows = digests.map { d -> [String] in
            [
                RunDigest.shortID(d.run.id), d.run.tool, d.run.tester, ReportFormat.time(d.run.startedAt),
                Human.duration(seconds: d.durationSeconds), ReportFormat.tags(d.run.tags), Human.grouped(Int64(d.samples)),
                Human.duration(seconds: d.p50), Human.duration(seconds: d.p99), Human.duration(seconds: d.max),
                Human.rate(d.throughput, unit: d.throughputUnit), ReportFormat.percent(d.loss),
            ]
        }
        return "<section><h2>Runs</h2>"
            + HTML.table(
                ["run", "tool", "tester", "started (UTC)", "duration", "tags", "samples", "p50", "p99", "max", "throughput", "loss"],
                rows)
            + "</section>"
    }

    // MARK: smoke

    /// SmokePing's loss colours, by the share of an interval's events that were nak'd or failed.
    static let lossColours: [(upTo: Double, colour: String, label: String)] = [
        (0, "#1a9e00", "0%"), (0.05, "#00a0e0", "≤5%"), (0.10, "#0059ff", "≤10%"), (0.20, "#7e00ff", "≤20%"),
        (0.50, "#dd00ff", "≤50%"), (1.0, "#d00000", ">50%"),
    ]

    static func lossColour(_ fraction: Double) -> String {
        lossColours.first { fraction <= $0.upTo }?.colour ?? "#d00000"
    }

    /// Share of an interval's outcomes that were naks or errors.
    static func intervalLoss(_ interval: StoredInterval) -> Double {
        let bad = interval.naks + interval.errors
        let all = interval.events + bad
        return all > 0 ? Double(bad) / Double(all) : 0
    }

    /// The smoke bands of one interval: (low, high) percentile pairs, outermost first.
    static let bands: [(low: Double, high: Double, shade: String)] = [
        (0, 100, "#e4e4e4"), (5, 95, "#c8c8c8"), (10, 90, "#a8a8a8"), (25, 75, "#888888"),
    ]

    func smokeSection(_ digest: RunDigest) -> String {
        let measured = digest.intervals.filter { $0.count > 0 }
        let kind = digest.latencyKind
        let heading = "<h2>\(HTML.escape(kind.capitalizedFirst)) over time: run \(RunDigest.shortID(digest.run.id)) (\(HTML.escape(digest.run.tool)))</h2>"
        guard let first = digest.intervals.first else {
            return "<section>\(heading)<p>No report intervals stored for this run.</p></section>"
        }
        let start = first.startedAt
        let unit = LatencyUnit.suited(to: measured.compactMap(\.p99).max())
        var chart = SVGChart(title: "\(kind) over time, run \(digest.run.id)", cssClass: "smoke")
        let end = digest.intervals.map { $0.endedAt.timeIntervalSince(start) }.max() ?? 1
        let x = PlotScale(values: [0, end], range: chart.xRange)
        let y = PlotScale(values: measured.compactMap { $0.p99 }.map { $0 * unit.scale }, range: chart.yRange)
        let top = y.domain.upperBound
        chart.xAxis(x, label: "time since the first interval (s)") { tickText($0) }
        chart.yAxis(y, label: "\(kind) (\(unit.symbol))") { tickText($0) }
        var rows: [[String]] = []
        var medians: [Double] = []
        for interval in measured {
            let histogram = interval.latencyHistogram
            let x0 = x(interval.startedAt.timeIntervalSince(start))
            let x1 = Swift.max(x(interval.endedAt.timeIntervalSince(start)), x0 + 1)
            func value(_ p: Double) -> Double? {
                switch p {
                case 0: return interval.min
                case 100: return interval.max
                default: return histogram.seconds(atPercentile: p) ?? interval.p50
                }
            }
            for band in Self.bands {
                guard let low = value(band.low), let high = value(band.high) else { continue }
                let yLow = y(Swift.min(low * unit.scale, top))
                let yHigh = y(Swift.min(high * unit.scale, top))
                chart.add(
                    #"<rect class="band" x="\#(f(x0))" y="\#(f(yHigh))" width="\#(f(x1 - x0))" height="\#(f(Swift.max(yLow - yHigh, 0.5)))" fill="\#(band.shade)"/>"#
                )
            }
            guard let median = interval.p50 else { continue }
            medians.append(median)
            let loss = Self.intervalLoss(interval)
            let colour = Self.lossColour(loss)
            let ym = y(Swift.min(median * unit.scale, top))
            chart.add(#"<line class="median" x1="\#(f(x0))" y1="\#(f(ym))" x2="\#(f(x1))" y2="\#(f(ym))" stroke="\#(colour)"/>"#)
            chart.add(
                #"<circle class="pt" data-seq="\#(interval.seq)" cx="\#(f((x0 + x1) / 2))" cy="\#(f(ym))" r="2" fill="\#(colour)"><title>interval \#(interval.seq): median \#(HTML.escape(Human.duration(seconds: median))), loss \#(HTML.escape(ReportFormat.percent(loss)))</title></circle>"#
            )
            rows.append([
                String(interval.seq), Human.significant(interval.startedAt.timeIntervalSince(start)),
                Human.grouped(Int64(interval.count)), Human.duration(seconds: interval.min),
                Human.duration(seconds: value(25)), Human.duration(seconds: interval.p50), Human.duration(seconds: value(75)),
                Human.duration(seconds: interval.p90), Human.duration(seconds: interval.p99),
                Human.duration(seconds: interval.max), String(interval.naks), String(interval.errors),
                ReportFormat.percent(loss),
            ])
        }
        let legend = Self.smokeLegend(medians: medians, digest: digest)
        return "<section>\(heading)" + chart.render() + legend
            + "<details><summary>The numbers (\(rows.count) intervals)</summary>"
            + HTML.table(
                ["interval", "at (s)", "samples", "min", "p25", "p50", "p75", "p90", "p99", "max", "naks", "errors", "loss"],
                rows)
            + "</details></section>"
    }

    static func smokeLegend(medians: [Double], digest: RunDigest) -> String {
        let average = medians.isEmpty ? nil : medians.reduce(0, +) / Double(medians.count)
        let swatches = lossColours.map {
            #"<span class="swatch" style="background:\#($0.colour)"></span>\#(HTML.escape($0.label))"#
        }.joined(separator: " ")
        return #"<p class="legend">median \#(HTML.escape("avg \(Human.duration(seconds: average)), max \(Human.duration(seconds: medians.max())), min \(Human.duration(seconds: medians.min())), now \(Human.duration(seconds: medians.last))")); "#
            + "sd \(HTML.escape(Human.duration(seconds: digest.summaryLatency?.stddev))); loss \(HTML.escape(ReportFormat.percent(digest.loss)))"
            + "<br>smoke: min–max, p5–p95, p10–p90, p25–p75 of each interval (darker toward the median); "
            + "median colour by naks + errors in the interval: \(swatches)</p>"
    }

    // MARK: throughput and backlog

    func throughputSection(_ digest: RunDigest) -> String {
        let intervals = digest.intervals.filter { $0.durationSeconds > 0 }
        guard let first = intervals.first else { return "" }
        let start = first.startedAt
        let hasBacklog = intervals.contains { $0.backlog != nil }
        var chart = SVGChart(
            title: "throughput and backlog, run \(digest.run.id)", cssClass: "throughput", height: 260, rightAxis: hasBacklog)
        let rates = intervals.map { Double($0.events) / $0.durationSeconds }
        let end = intervals.map { $0.endedAt.timeIntervalSince(start) }.max() ?? 1
        let x = PlotScale(values: [0, end], range: chart.xRange)
        let y = PlotScale(values: rates, range: chart.yRange)
        let unit = digest.throughputUnit
        chart.xAxis(x, label: "time since the first interval (s)") { tickText($0) }
        chart.yAxis(y, label: "\(unit)/s") { tickText($0) }
        var points: [String] = []
        for (interval, rate) in zip(intervals, rates) {
            let cx = x((interval.startedAt.timeIntervalSince(start) + interval.endedAt.timeIntervalSince(start)) / 2)
            points.append("\(f(cx)),\(f(y(rate)))")
            chart.add(#"<circle class="tp" data-seq="\#(interval.seq)" cx="\#(f(cx))" cy="\#(f(y(rate)))" r="2"/>"#)
        }
        chart.add(#"<polyline class="rate" points="\#(points.joined(separator: " "))"/>"#)
        if hasBacklog {
            let backlog = PlotScale(values: intervals.compactMap { $0.backlog.map(Double.init) }, range: chart.yRange)
            chart.yAxis(backlog, label: "backlog (events)", rightSide: true) { tickText($0) }
            let line = intervals.compactMap { interval -> String? in
                guard let value = interval.backlog else { return nil }
                return "\(f(x(interval.endedAt.timeIntervalSince(start)))),\(f(backlog(Double(value))))"
            }
            chart.add(#"<polyline class="backlog" points="\#(line.joined(separator: " "))"/>"#)
        }
        let rows = zip(intervals, rates).map { interval, rate in
            [
                String(interval.seq), Human.significant(interval.startedAt.timeIntervalSince(start)),
                Human.grouped(Int64(interval.events)), Human.rate(rate, unit: unit),
                interval.backlog.map { Human.grouped(Int64($0)) } ?? "-",
                interval.openConnections.map { Human.grouped(Int64($0)) } ?? "-",
            ]
        }
        return "<section><h2>Throughput\(hasBacklog ? " and backlog" : "") over time: run \(RunDigest.shortID(digest.run.id))</h2>"
            + chart.render()
            + #"<p class="legend"><span class="swatch rate"></span>\#(unit)/s per interval (left axis)"#
            + (hasBacklog ? #" <span class="swatch backlog"></span>backlog at the interval's end (right axis)"# : "")
            + "</p><details><summary>The numbers (\(rows.count) intervals)</summary>"
            + HTML.table(["interval", "at (s)", unit, "\(unit)/s", "backlog", "open connections"], rows)
            + "</details></section>"
    }

    // MARK: percentile spectrum

    static let spectrumTicks: [(x: Double, label: String)] = [
        (1, "0%"), (2, "50%"), (10, "90%"), (100, "99%"), (1000, "99.9%"), (10_000, "99.99%"), (100_000, "99.999%"),
    ]

    func spectrumSection() -> String {
        let series = digests.filter { $0.histogram.totalCount > 0 }.map { digest in
            (digest, digest.histogram.spectrum().filter { $0.percentile < 100 }.map { (x: 1 / (1 - $0.percentile / 100), y: $0.seconds) })
        }
        guard !series.isEmpty else { return "<section><h2>Percentile spectrum</h2><p>No latency samples stored.</p></section>" }
        let unit = LatencyUnit.suited(to: series.flatMap { $0.1.map(\.y) }.max())
        var chart = SVGChart(title: "latency by percentile", cssClass: "spectrum", height: 360)
        let maxX = Swift.min(Swift.max(series.flatMap { $0.1.map(\.x) }.max() ?? 10, 10), 100_000)
        let x = PlotScale(kind: .log10, values: [1, maxX], range: chart.xRange)
        let y = PlotScale(values: series.flatMap { $0.1.map { $0.y * unit.scale } }, range: chart.yRange)
        chart.yAxis(y, label: "latency (\(unit.symbol))") { tickText($0) }
        // The axis with percentile labels (a log scale of 1/(1 − p), as HdrHistogram plots it).
        let axisY = chart.height - chart.bottom
        chart.add(#"<line class="axis" x1="\#(f(chart.left))" y1="\#(f(axisY))" x2="\#(f(chart.width - chart.right))" y2="\#(f(axisY))"/>"#)
        for tick in Self.spectrumTicks where tick.x <= x.domain.upperBound {
            chart.add(#"<line class="grid" x1="\#(f(x(tick.x)))" y1="\#(f(chart.top))" x2="\#(f(x(tick.x)))" y2="\#(f(axisY))"/>"#)
            chart.add(#"<text class="tick" x="\#(f(x(tick.x)))" y="\#(f(axisY + 16))" text-anchor="middle">\#(tick.label)</text>"#)
        }
        chart.add(#"<text class="label" x="\#(f((chart.left + chart.width - chart.right) / 2))" y="\#(f(chart.height - 8))" text-anchor="middle">percentile (log scale of 1/(1 − p))</text>"#)
        var legend: [String] = []
        for (index, (digest, points)) in series.enumerated() {
            let colour = Self.palette[index % Self.palette.count]
            let path = points.map { "\(f(x($0.x))),\(f(y($0.y * unit.scale)))" }.joined(separator: " ")
            chart.add(#"<polyline class="spectrum-line" data-run="\#(digest.run.id)" points="\#(path)" stroke="\#(colour)"/>"#)
            legend.append(
                #"<span class="swatch" style="background:\#(colour)"></span>\#(RunDigest.shortID(digest.run.id)) \#(HTML.escape(digest.run.tool)) \#(HTML.escape(ReportFormat.tags(digest.run.tags)))"#)
        }
        let rows = series.map { digest, _ -> [String] in
            [RunDigest.shortID(digest.run.id), digest.run.tool, digest.latencyKind]
                + [50, 90, 99, 99.9, 99.99].map { Human.duration(seconds: digest.histogram.seconds(atPercentile: $0)) }
                + [Human.duration(seconds: digest.max)]
        }
        return "<section><h2>Percentile spectrum</h2>" + chart.render()
            + #"<p class="legend">\#(legend.joined(separator: " &nbsp; "))</p>"#
            + HTML.table(["run", "tool", "latency", "p50", "p90", "p99", "p99.9", "p99.99", "max"], rows) + "</section>"
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]

    // MARK: sweep

    /// The tag to plot against: the one asked for, else max_connect, delay or mode when they
    /// vary among the runs, else any tag that does.
    public var chosenSweepTag: String? {
        if let sweepTag { return sweepTag }
        var values: [String: Set<String>] = [:]
        for digest in digests { for (key, value) in digest.run.tags { values[key, default: []].insert(value) } }
        let varying = values.filter { $0.value.count > 1 }.keys
        for preferred in ["max_connect", "delay", "mode", "window"] where varying.contains(preferred) { return preferred }
        return varying.sorted().first
    }

    func sweepSection() -> String? {
        guard let tag = chosenSweepTag else { return nil }
        let groups = SweepGroup.make(by: tag, digests).filter { $0.samples > 0 }
        guard !groups.isEmpty else { return nil }
        let values = groups.map(\.value).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let ordered = SweepGroup.sortValues(values)
        let unit = LatencyUnit.suited(to: groups.compactMap(\.p99).max())
        var chart = SVGChart(title: "latency against \(tag)", cssClass: "sweep", height: 320)
        let span = chart.xRange
        func xPosition(_ value: String) -> Double {
            guard let index = ordered.firstIndex(of: value) else { return span.from }
            let step = (span.to - span.from) / Double(ordered.count)
            return span.from + step * (Double(index) + 0.5)
        }
        let y = PlotScale(values: groups.compactMap(\.p99).map { $0 * unit.scale }, range: chart.yRange)
        chart.yAxis(y, label: "latency (\(unit.symbol))") { tickText($0) }
        let axisY = chart.height - chart.bottom
        chart.add(#"<line class="axis" x1="\#(f(chart.left))" y1="\#(f(axisY))" x2="\#(f(chart.width - chart.right))" y2="\#(f(axisY))"/>"#)
        for value in ordered {
            chart.add(#"<text class="tick" x="\#(f(xPosition(value)))" y="\#(f(axisY + 16))" text-anchor="middle">\#(HTML.escape(value))</text>"#)
        }
        chart.add(#"<text class="label" x="\#(f((chart.left + chart.width - chart.right) / 2))" y="\#(f(chart.height - 8))" text-anchor="middle">\#(HTML.escape(tag))</text>"#)
        var legend: [String] = []
        let tools = groups.map(\.tool).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        for (index, tool) in tools.enumerated() {
            let colour = Self.palette[index % Self.palette.count]
            let mine = groups.filter { $0.tool == tool }.sorted { xPosition($0.value) < xPosition($1.value) }
            for (name, value, dash) in [("p50", { (g: SweepGroup) in g.p50 }, ""), ("p99", { (g: SweepGroup) in g.p99 }, " stroke-dasharray=\"6 4\"")] {
                let points = mine.compactMap { g in value(g).map { (xPosition(g.value), y($0 * unit.scale), g.value) } }
                chart.add(
                    #"<polyline class="sweep-line" points="\#(points.map { "\(f($0.0)),\(f($0.1))" }.joined(separator: " "))" stroke="\#(colour)"\#(dash)/>"#)
                for point in points {
                    chart.add(#"<circle class="sw" data-value="\#(HTML.escape(point.2))" cx="\#(f(point.0))" cy="\#(f(point.1))" r="3" fill="\#(colour)"/>"#)
                }
                legend.append(
                    #"<span class="swatch" style="background:\#(colour)"></span>\#(HTML.escape(tool)) \#(name)\#(dash.isEmpty ? "" : " (dashed)")"#)
            }
        }
        let rows = groups.map { g in
            [
                g.value, g.tool, String(g.runs.count), Human.grouped(Int64(g.samples)), Human.duration(seconds: g.p50),
                Human.duration(seconds: g.p99), Human.duration(seconds: g.max), Human.rate(g.throughput, unit: g.throughputUnit),
                ReportFormat.percent(g.loss),
            ]
        }
        return "<section><h2>Latency against \(HTML.escape(tag))</h2>" + chart.render()
            + #"<p class="legend">\#(legend.joined(separator: " &nbsp; ")); each point merges the histograms of every run with that value</p>"#
            + HTML.table([tag, "tool", "runs", "samples", "p50", "p99", "max", "throughput", "loss"], rows) + "</section>"
    }

    // MARK: tester × target

    /// Where a run measured to: its `target` tag, else the sender's receiver or the probe's server.
    static func target(of run: StoredRun) -> String? {
        if let target = run.tags["target"] { return target }
        let config = run.configObject
        switch run.tool {
        case "vtp-sender":
            guard let host = config["host"] as? String else { return nil }
            return (config["port"] as? Int).map { "\(host):\($0)" } ?? host
        case "pgprobe":
            guard let dsn = config["dsn"] as? String else { return nil }
            return String(dsn.split(separator: "@").last?.split(separator: "/").first ?? Substring(dsn))
        default:
            return nil
        }
    }

    func matrixSection() -> String? {
        var cells: [String: [String: LatencyHistogram]] = [:]
        for digest in digests where digest.histogram.totalCount > 0 {
            guard let target = Self.target(of: digest.run) else { continue }
            cells[digest.run.tester, default: [:]][target, default: LatencyHistogram()].merge(digest.histogram)
        }
        guard !cells.isEmpty else { return nil }
        let testers = cells.keys.sorted()
        let targets = Set(cells.values.flatMap(\.keys)).sorted()
        let medians = cells.values.flatMap(\.values).compactMap { $0.seconds(atPercentile: 50) }.filter { $0 > 0 }
        let low = medians.min() ?? 0
        let high = medians.max() ?? 0
        func colour(_ median: Double) -> String {
            // Green for the fastest cell to red for the slowest, on a log scale.
            let fraction = high > low && median > 0 ? (log(median) - log(low)) / (log(high) - log(low)) : 0
            return "hsl(\(Int((1 - Swift.min(Swift.max(fraction, 0), 1)) * 120)), 70%, 80%)"
        }
        var html = #"<table class="matrix"><thead><tr><th>tester \ target</th>"#
            + targets.map { "<th>\(HTML.escape($0))</th>" }.joined() + "</tr></thead><tbody>"
        for tester in testers {
            html += "<tr><th>\(HTML.escape(tester))</th>"
            for target in targets {
                if let median = cells[tester]?[target]?.seconds(atPercentile: 50) {
                    html += #"<td class="cell" style="background:\#(colour(median))">\#(HTML.escape(Human.duration(seconds: median)))</td>"#
                } else {
                    html += "<td>-</td>"
                }
            }
            html += "</tr>"
        }
        html += "</tbody></table>"
        return "<section><h2>Median latency, tester × target</h2>" + html
            + #"<p class="legend">Each cell merges the histograms of that tester's runs to that target (a target tag, the sender's receiver, the probe's server); colour from green (fastest) to red (slowest).</p></section>"#
    }

    // MARK: page

    static let css = """
        body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}
        h1{font-size:22px}h2{font-size:17px;margin-top:28px}.meta{color:#555}
        table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}
        th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}th{background:#f4f4f4}
        td:first-child,th:first-child{text-align:left}
        .chart{display:block;max-width:100%;height:auto;background:#fff}
        .axis{stroke:#333;stroke-width:1}.grid{stroke:#eee;stroke-width:1}
        .tick{font-size:11px;fill:#444}.label{font-size:12px;fill:#222}
        .median{stroke-width:2}.rate,.spectrum-line,.sweep-line{fill:none;stroke-width:2}
        .rate{stroke:#1f77b4}.tp{fill:#1f77b4}.backlog{fill:none;stroke:#d62728;stroke-width:1.5;stroke-dasharray:5 3}
        .legend{font-size:12px;color:#333}.swatch{display:inline-block;width:12px;height:10px;margin:0 3px 0 8px;vertical-align:middle}
        .swatch.rate{background:#1f77b4}.swatch.backlog{background:#d62728}
        details{margin:6px 0 18px}summary{cursor:pointer;color:#1f4f99}
        """

    /// Counts what the browser built (the test reads these back from the DOM).
    static let script = """
        for (const svg of document.querySelectorAll('svg.chart')) { svg.dataset.renderedPoints = svg.querySelectorAll('circle').length; }
        document.documentElement.dataset.charts = document.querySelectorAll('svg.chart').length;
        """
}

extension String {
    var capitalizedFirst: String { prefix(1).uppercased() + dropFirst() }
}

extension SweepGroup {
    /// Values in numeric order when every one is a number (250ms counts as 0.25), else as text.
    static func sortValues(_ values: [String]) -> [String] {
        let numbers = values.map(number)
        if numbers.allSatisfy({ $0 != nil }) {
            return zip(values, numbers).sorted { ($0.1 ?? 0, $0.0) < ($1.1 ?? 0, $1.0) }.map(\.0)
        }
        return values.sorted()
    }
}
