import LatencyStats

/// What a tool's metrics read at one moment: cumulative counts, current gauges, histograms.
/// The tool builds it on the loops that own the numbers (no lock on the hot path); the exporter
/// turns it into Prometheus series.
public struct MetricsSnapshot: Sendable {
    /// One series: a metric and its labels (sorted by name).
    public struct Series: Hashable, Sendable {
        public var metric: Metric
        public var labels: [Label]

        public init(_ metric: Metric, labels: [Label] = []) {
            self.metric = metric
            self.labels = labels.sorted { $0.name < $1.name }
        }
    }

    public struct Label: Hashable, Sendable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public private(set) var counters: [Series: Int] = [:]
    public private(set) var gauges: [Series: Double] = [:]
    public private(set) var histograms: [Series: ExponentialBuckets] = [:]

    public init() {}

    public mutating func count(_ metric: Metric, _ value: Int, labels: [Label] = []) {
        precondition(metric.kind == .counter, "\(metric.name) is not a counter")
        counters[Series(metric, labels: labels)] = value
    }

    public mutating func gauge(_ metric: Metric, _ value: Double, labels: [Label] = []) {
        precondition(metric.kind == .gauge, "\(metric.name) is not a gauge")
        gauges[Series(metric, labels: labels)] = value
    }

    public mutating func histogram(_ metric: Metric, _ buckets: ExponentialBuckets, labels: [Label] = []) {
        precondition(metric.kind == .histogram, "\(metric.name) is not a histogram")
        histograms[Series(metric, labels: labels)] = buckets
    }
}
