/// One exported metric: its Prometheus name, kind and help text. Every name the tools export is
/// declared once, in `Metric`'s static members below (the README's table lists the same).
public struct Metric: Hashable, Sendable {
    public enum Kind: String, Sendable { case counter, gauge, histogram }

    public static let namespace = "vtpbench"

    public let kind: Kind
    /// The full name, e.g. `vtpbench_events_received_total`.
    public let name: String
    public let help: String

    /// `base` and `unit` joined under the namespace (`events_received` + `total`).
    public init(_ kind: Kind, _ base: String, unit: String, help: String) {
        self.kind = kind
        name = [Self.namespace, base, unit].filter { !$0.isEmpty }.joined(separator: "_")
        self.help = help
    }
}

extension Metric {
    // MARK: every VTP tool
    public static let acks = Metric(.counter, "acks", unit: "total", help: "Acks: sent by a receiver, received by a sender.")
    public static let naks = Metric(.counter, "naks", unit: "total", help: "Naks: sent by a receiver, received by a sender.")
    public static let errors = Metric(
        .counter, "errors", unit: "total",
        help: "Failures: framing errors (receiver), failed connections and attempts (sender, proxy), failed queries (pgprobe).")
    public static let openConnections = Metric(.gauge, "open", unit: "connections", help: "Connections open now.")
    public static let backlog = Metric(.gauge, "backlog", unit: "events", help: "Events due but not yet sent (sender).")

    // MARK: vtp-receiver
    public static let eventsReceived = Metric(.counter, "events_received", unit: "total", help: "Events received and parsed.")
    public static let eventLatency = Metric(
        .histogram, "event_latency", unit: "seconds",
        help: "One-way latency: receive time minus the event's embedded send time (warm-up and implausible timestamps excluded).")
    public static let connectionsAccepted = Metric(
        .counter, "connections_accepted", unit: "total", help: "Connections accepted.")
    public static let duplicates = Metric(.counter, "duplicate_events", unit: "total", help: "Events whose sequence number was seen before.")
    public static let missing = Metric(.gauge, "missing", unit: "events", help: "Sequence numbers not (yet) received below the highest one.")

    // MARK: vtp-sender
    public static let eventsSent = Metric(.counter, "events_sent", unit: "total", help: "Event writes, retries included.")
    public static let connectionsOpened = Metric(.counter, "connections_opened", unit: "total", help: "Connections opened.")
    public static let ackRoundTrip = Metric(
        .histogram, "ack_round_trip", unit: "seconds", help: "From writing an event to reading its ack or nak.")

    // MARK: vtp-proxy
    public static let proxyBytes = Metric(
        .counter, "proxy", unit: "bytes_total", help: "Bytes forwarded, by direction (upstream: client to server).")
    public static let proxyConnections = Metric(
        .counter, "proxy_connections", unit: "total", help: "Client connections accepted by the proxy.")

    // MARK: pgprobe
    public static let queries = Metric(.counter, "queries", unit: "total", help: "Queries answered.")
    public static let queryLatency = Metric(
        .histogram, "query_latency", unit: "seconds", help: "From sending a query to its last result row.")
}
