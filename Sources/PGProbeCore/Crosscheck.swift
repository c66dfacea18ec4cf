import CommandLineKit
import LatencyStats
import PGSniff
import Synchronization

/// `pgprobe crosscheck --summary-json`: `{"matched","unmatched","client_s","wire_rtt_s","client_minus_wire_s"}`.
/// `client_s` covers every successful probe query, seen on the wire or not; the other two only
/// the matched ones. Empty statistics are null.
public struct CrosscheckSummary: Encodable, Sendable, Equatable {
    /// Successful probe queries found on the wire.
    public var matched: Int
    /// Successful probe queries whose packets were not found (capture drops, wrong interface).
    public var unmatched: Int
    public var client_s: LatencySummary
    public var wire_rtt_s: LatencySummary
    public var client_minus_wire_s: LatencySummary

    enum CodingKeys: String, CodingKey { case matched, unmatched, client_s, wire_rtt_s, client_minus_wire_s }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(matched, forKey: .matched)
        try c.encode(unmatched, forKey: .unmatched)
        try c.encode(client_s, nullIf: client_s.count == 0, forKey: .client_s)
        try c.encode(wire_rtt_s, nullIf: wire_rtt_s.count == 0, forKey: .wire_rtt_s)
        try c.encode(client_minus_wire_s, nullIf: client_minus_wire_s.count == 0, forKey: .client_minus_wire_s)
    }
}

/// One probe query next to its packets.
public struct CrosscheckRow: Sendable {
    public var index: Int
    public var clientNanos: Int64
    /// Request packet → ReadyForQuery packet; nil when unmatched.
    public var wire: PGQueryTiming?
    public var differenceNanos: Int64? { wire.map { clientNanos - $0.completionNanos } }
}

/// Tags each probe query with a unique comment, so its packets can be told apart from any
/// other traffic on the port (other clients, the probe's own reconnects).
public struct QueryTagger: Sendable {
    public let runID: String

    public init(runID: String) { self.runID = runID }

    public init() {
        self.init(runID: String(UInt32.random(in: 0...UInt32.max), radix: 36))
    }

    /// A leading comment survives the 1 KiB text limit of the inference.
    public func tag(_ index: Int) -> String { "/* pgprobe \(runID) \(index) */" }

    public func sql(_ index: Int, _ query: String) -> String { tag(index) + " " + query }

    /// The probe index a captured query text carries, if it is one of ours.
    public func index(in text: String) -> Int? {
        let prefix = "/* pgprobe \(runID) "
        guard text.hasPrefix(prefix) else { return nil }
        return Int(text.dropFirst(prefix.count).prefix(while: \.isNumber))
    }
}

/// Matches probe outcomes with wire timings and aggregates the comparison.
public struct CrosscheckMatcher: Sendable {
    public let tagger: QueryTagger
    private var wireByIndex: [Int: PGQueryTiming] = [:]
    public private(set) var rows: [CrosscheckRow] = []
    public private(set) var failedQueries = 0

    public init(tagger: QueryTagger) { self.tagger = tagger }

    public mutating func addWire(_ timing: PGQueryTiming) {
        guard timing.kind != .startup, let index = tagger.index(in: timing.text) else { return }
        wireByIndex[index] = timing
    }

    public mutating func addProbe(_ outcome: QueryOutcome) {
        guard let nanos = outcome.latencyNanos else {
            failedQueries += 1
            return
        }
        rows.append(CrosscheckRow(index: outcome.index, clientNanos: nanos, wire: nil))
    }

    /// Pairs every probe query with its wire timing; call once both sides are complete.
    public mutating func resolve() {
        for position in rows.indices { rows[position].wire = wireByIndex[rows[position].index] }
    }

    public var summary: CrosscheckSummary {
        var client = LatencyRecorder()
        var wire = LatencyRecorder()
        var difference = LatencyRecorder()
        var unmatched = 0
        for row in rows {
            // The client timer counts whether or not the wire saw the query: it was measured.
            client.record(nanos: row.clientNanos)
            guard let timing = row.wire, let delta = row.differenceNanos else {
                unmatched += 1
                continue
            }
            wire.record(nanos: timing.completionNanos)
            difference.record(nanos: delta)
        }
        return CrosscheckSummary(
            matched: rows.count - unmatched, unmatched: unmatched, client_s: client.summary, wire_rtt_s: wire.summary,
            client_minus_wire_s: difference.summary)
    }

    public static func line(_ row: CrosscheckRow) -> String {
        let label = "query \(row.index + 1)"
        let client = Human.duration(seconds: Double(row.clientNanos) / 1e9)
        guard let wire = row.wire, let delta = row.differenceNanos else {
            return "\(label) client \(client) wire NOT SEEN"
        }
        return "\(label) \(wire.flow.client) client \(client) wire "
            + Human.duration(seconds: Double(wire.completionNanos) / 1e9) + " client-wire "
            + Human.duration(seconds: Double(delta) / 1e9)
    }
}

public struct CrosscheckOptions: Sendable {
    public var probe: QueryProbeOptions
    public var interface: String
    /// Time left after the last query for its packets to reach the capture.
    public var drainNanos: Int64 = 200_000_000
    public init(probe: QueryProbeOptions, interface: String) {
        self.probe = probe
        self.interface = interface
    }
}

/// Runs the query probe with a live sniffer on the server port and matches the two.
public struct Crosscheck: Sendable {
    public var options: CrosscheckOptions
    public let tagger: QueryTagger

    public init(options: CrosscheckOptions, tagger: QueryTagger = QueryTagger()) {
        self.options = options
        self.tagger = tagger
    }

    public struct Outcome: Sendable {
        public var matcher: CrosscheckMatcher
        public var sniff: LiveSniffer.Result
        /// Why the probe stopped early (a rejected login), if it did.
        public var probeError: String?
        /// Set when the capture saw none of the successful probe queries: where the traffic goes.
        public var interfaceAdvice: String?
    }

    /// `onOutcome` sees each probe query as it completes (for progress lines), on this task.
    public func run(onOutcome: (QueryOutcome) async -> Void = { _ in }) async throws -> Outcome {
        let sniffer = try LiveSniffer(interface: options.interface, serverPorts: [UInt16(options.probe.dsn.port)])
        // Filled by the capture thread, read here once it has stopped.
        let wire = Mutex<[PGQueryTiming]>([])
        sniffer.start { timing in wire.withLock { $0.append(timing) } }
        var probeOptions = options.probe
        let tagger = self.tagger
        let userSQL = probeOptions.sqlForIndex
        probeOptions.sqlForIndex = { index, query in tagger.sql(index, userSQL(index, query)) }
        var matcher = CrosscheckMatcher(tagger: tagger)
        var probeError: String?
        do {
            try await QueryProbe(options: probeOptions).run { outcome in
                matcher.addProbe(outcome)
                await onOutcome(outcome)
            }
        } catch {
            probeError = describe(error)
        }
        try? await Task.sleep(nanoseconds: UInt64(max(options.drainNanos, 0)))
        let sniffResult = sniffer.stop()
        for timing in wire.withLock({ $0 }) { matcher.addWire(timing) }
        matcher.resolve()
        let summary = matcher.summary
        var advice: String?
        if summary.matched == 0 && summary.unmatched > 0 {
            advice = InterfaceAdvice.text(
                captured: options.interface, host: options.probe.dsn.host, port: options.probe.dsn.port)
        }
        return Outcome(matcher: matcher, sniff: sniffResult, probeError: probeError, interfaceAdvice: advice)
    }
}
