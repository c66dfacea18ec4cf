import LatencyStats
import NIOCore
import Prometheus

/// Turns a tool's `MetricsSnapshot`s into the Prometheus text format.
///
/// Counters and gauges live in a swift-prometheus `PrometheusCollectorRegistry`. Histograms are
/// written here from `ExponentialBuckets`: swift-prometheus' histogram takes one observation at
/// a time under a lock (~170–330 ns each here), while the tools count into per-loop buckets
/// for a few nanoseconds and hand over the merged counts at scrape time, which that histogram
/// has no way to take.
///
/// Scrapes are applied on one event loop (`loop`), which owns what was exported last.
public final class MetricsExporter: Sendable {
    /// Reads the tool's numbers where they live; called once per scrape.
    public typealias Source = @Sendable () -> EventLoopFuture<MetricsSnapshot>

    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public let loop: any EventLoop
    private let registry = PrometheusCollectorRegistry()
    private let source: Source
    private let state: NIOLoopBoundBox<State>

    private struct State {
        var counters: [MetricsSnapshot.Series: (counter: Counter, exported: Int)] = [:]
        var gauges: [MetricsSnapshot.Series: Gauge] = [:]
        var histograms: [MetricsSnapshot.Series: ExponentialBuckets] = [:]
    }

    /// - Parameter metrics: exported from the first scrape on, at zero until the source says otherwise.
    public init(declaring metrics: [Metric], on loop: any EventLoop, source: @escaping Source) {
        self.loop = loop
        self.source = source
        var initial = State()
        for metric in metrics {
            let series = MetricsSnapshot.Series(metric)
            switch metric.kind {
            case .counter: initial.counters[series] = (Self.makeCounter(series, in: registry), 0)
            case .gauge: initial.gauges[series] = Self.makeGauge(series, in: registry)
            case .histogram: initial.histograms[series] = ExponentialBuckets()
            }
        }
        state = .makeBoxSendingValue(initial, eventLoop: loop)
    }

    /// Reads the source and renders every metric. A failed read renders what the last one left.
    public func scrape() -> EventLoopFuture<ByteBuffer> {
        source().hop(to: loop)
            .map { snapshot in self.apply(snapshot) }
            .recover { _ in }
            .map { self.render() }
    }

    private func apply(_ snapshot: MetricsSnapshot) {
        state.withValue { state in
            for (series, value) in snapshot.counters {
                var entry = state.counters[series] ?? (Self.makeCounter(series, in: registry), 0)
                // Counters only rise; a read older than the last one (two scrapes crossing) is skipped.
                if value > entry.exported {
                    entry.counter.increment(by: Int64(value - entry.exported))
                    entry.exported = value
                }
                state.counters[series] = entry
            }
            for (series, value) in snapshot.gauges {
                let gauge = state.gauges[series] ?? Self.makeGauge(series, in: registry)
                gauge.set(to: value)
                state.gauges[series] = gauge
            }
            for (series, buckets) in snapshot.histograms where buckets.count >= state.histograms[series]?.count ?? 0 {
                state.histograms[series] = buckets
            }
        }
    }

    private func render() -> ByteBuffer {
        var bytes = registry.emitToBuffer()
        let histograms = state.value.histograms
        let byName = Dictionary(grouping: histograms.keys) { $0.metric }
        for metric in byName.keys.sorted(by: { $0.name < $1.name }) {
            PrometheusText.header(metric, into: &bytes)
            for series in byName[metric, default: []].sorted(by: { $0.labels.lexicographicallyPrecedes($1.labels) }) {
                PrometheusText.histogram(series, histograms[series] ?? ExponentialBuckets(), into: &bytes)
            }
        }
        return ByteBuffer(bytes: bytes)
    }

    private static func makeCounter(_ series: MetricsSnapshot.Series, in registry: PrometheusCollectorRegistry) -> Counter {
        registry.makeCounter(descriptor: descriptor(series.metric), labels: series.labels.map { ($0.name, $0.value) })
    }

    private static func makeGauge(_ series: MetricsSnapshot.Series, in registry: PrometheusCollectorRegistry) -> Gauge {
        registry.makeGauge(descriptor: descriptor(series.metric), labels: series.labels.map { ($0.name, $0.value) })
    }

    /// The full name is ours already (`Metric.name`); the descriptor only carries it and the help.
    private static func descriptor(_ metric: Metric) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: metric.name, unitName: "", helpText: metric.help)
    }
}

extension MetricsSnapshot.Label: Comparable {
    public static func < (a: Self, b: Self) -> Bool { (a.name, a.value) < (b.name, b.value) }
}

/// The text exposition format (version 0.0.4) for what the registry does not write.
enum PrometheusText {
    static func header(_ metric: Metric, into bytes: inout [UInt8]) {
        bytes.append(contentsOf: "# HELP \(metric.name) \(escapeHelp(metric.help))\n# TYPE \(metric.name) \(metric.kind.rawValue)\n".utf8)
    }

    static func histogram(_ series: MetricsSnapshot.Series, _ buckets: ExponentialBuckets, into bytes: inout [UInt8]) {
        let name = series.metric.name
        let labels = series.labels.map { "\($0.name)=\"\(escapeLabelValue($0.value))\"" }
        let cumulative = buckets.cumulativeCounts
        var text = ""
        for (index, bound) in ExponentialBuckets.boundsNanos.enumerated() {
            text += "\(name)_bucket{\((labels + ["le=\"\(seconds(nanos: bound))\""]).joined(separator: ","))} \(cumulative[index])\n"
        }
        text += "\(name)_bucket{\((labels + ["le=\"+Inf\""]).joined(separator: ","))} \(buckets.count)\n"
        let plain = labels.isEmpty ? "" : "{\(labels.joined(separator: ","))}"
        text += "\(name)_sum\(plain) \(buckets.sumSeconds)\n\(name)_count\(plain) \(buckets.count)\n"
        bytes.append(contentsOf: text.utf8)
    }

    /// Exact decimal seconds for a whole number of nanoseconds: 50_000 → "0.00005".
    static func seconds(nanos: Int64) -> String {
        let whole = nanos / 1_000_000_000
        var fraction = String(nanos % 1_000_000_000)
        fraction = String(repeating: "0", count: 9 - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return fraction.isEmpty ? "\(whole)" : "\(whole).\(fraction)"
    }

    static func escapeHelp(_ text: String) -> String {
        text.replacingOccurrences("\\", with: "\\\\").replacingOccurrences("\n", with: "\\n")
    }

    static func escapeLabelValue(_ text: String) -> String {
        escapeHelp(text).replacingOccurrences("\"", with: "\\\"")
    }
}

extension String {
    /// Without Foundation: the exporter links only NIO and swift-prometheus.
    fileprivate func replacingOccurrences(_ target: Character, with replacement: String) -> String {
        var result = ""
        for character in self { if character == target { result += replacement } else { result.append(character) } }
        return result
    }
}
