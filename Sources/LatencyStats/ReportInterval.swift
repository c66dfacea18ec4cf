/// What a tool measured over one report interval, as it hands it to the results store (a plain
/// value: the measuring loop gives it away and never touches it again). Counters cover the
/// interval; `missing`, `backlog` and `openConnections` are the state at its end; nil where the
/// tool has no such thing (a sender has no duplicates, a receiver no backlog).
public struct ReportInterval: Sendable {
    /// Wall clock, nanoseconds since 1970.
    public var startNanos: Int64
    public var endNanos: Int64
    /// Events received (receiver), acked (sender), queries completed (pgprobe).
    public var events: Int
    /// The interval's latencies: one-way (receiver), ack round trip (sender), query (pgprobe).
    public var latency: LatencyRecorder
    public var naks: Int
    public var errors: Int
    public var duplicates: Int?
    public var missing: Int?
    public var backlog: Int?
    public var openConnections: Int?

    public init(
        startNanos: Int64, endNanos: Int64, events: Int, latency: LatencyRecorder, naks: Int = 0, errors: Int = 0,
        duplicates: Int? = nil, missing: Int? = nil, backlog: Int? = nil, openConnections: Int? = nil
    ) {
        self.startNanos = startNanos
        self.endNanos = endNanos
        self.events = events
        self.latency = latency
        self.naks = naks
        self.errors = errors
        self.duplicates = duplicates
        self.missing = missing
        self.backlog = backlog
        self.openConnections = openConnections
    }
}
