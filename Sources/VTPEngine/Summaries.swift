import CommandLineKit
import Foundation
import LatencyStats

/// `vtp-sender --summary-json`. Statistics that were not measured encode as `null`.
public struct SenderSummary: Codable, Sendable, Equatable {
    public var events: Int
    public var sent: Int
    public var acked: Int
    public var nakked: Int
    /// Scheduled events neither acked nor nak'd when the run ended.
    public var failed: Int
    /// Events never scheduled because the run was stopped first (absent in older summaries).
    public var notSent: Int?
    public var maxBacklog: Int
    public var backlogEnd: Int
    /// Connections that opened (failed connect attempts are `errors`).
    public var connectionsOpened: Int
    public var durationSeconds: Double
    /// Round trip from the event's write to its ack, on the monotonic clock (nil: none acked).
    public var ackRoundTripStatistics: LatencySummary?
    public var retries: Int
    public var errors: Int
    /// `errors` by cause (`refused`, `closed before ack`, ...); absent in older summaries.
    public var errorsByCause: [String: Int]?
    public var mode: String
    public var maxConnect: Int
    public var maxConnectScope: String
    /// Events a persistent connection could have awaiting acks (absent in older summaries).
    public var window: Int?
    /// With `--burst`: each burst's drain time (nil without bursts).
    public var bursts: BurstsSummary?
    /// Receiver clock − sender clock, from the acks' receive/reply times (nil without them).
    public var clockOffset: ClockOffsetSummary?
    /// Smallest and largest event document written, in bytes (nil when none was).
    public var eventBytes: ByteRange?
    /// `--broadcast`: one entry per subscriber that connected (absent otherwise).
    public var subscribers: [BroadcastSubscriberSummary]? = nil
    /// `--broadcast`: subscribers dropped for an overdue ack or a missed iamalive.
    public var subscribersDropped: Int? = nil
    // Targets and failover (absent in older summaries).
    /// Every move to the next target after a failure.
    public var failovers: [FailoverRecord]? = nil
    /// `--failback`: every return to an earlier target.
    public var failbacks: [FailbackRecord]? = nil
    /// Scheduled events no target acked (nak'd ones included, as "seen before" naks are not).
    public var lost: Int? = nil
    /// Writes of an event that had been written before (after a failure), to any target.
    public var duplicatesSent: Int? = nil
    /// Naks saying the event was seen before (Comet: "Previously seen"): counted as acked.
    public var seenBefore: Int? = nil
    public var targets: [TargetSummary]? = nil
    /// `ordered` or `all`.
    public var failoverMode: String? = nil

    public struct ByteRange: Codable, Sendable, Equatable {
        public var min: Int
        public var max: Int
        public init(min: Int, max: Int) {
            self.min = min
            self.max = max
        }
    }

    /// The ack round trips, empty (count 0) when none was measured.
    public var ackRoundTrip: LatencySummary { ackRoundTripStatistics ?? .empty }

    /// Acked events per second over the run (nil for a run of no duration).
    public var ackedPerSecond: Double? {
        durationSeconds > 0 ? Double(acked) / durationSeconds : nil
    }

    enum CodingKeys: String, CodingKey {
        case events, sent, acked, nakked, failed, retries, errors, mode, window, bursts
        case notSent = "not_sent"
        case clockOffset = "clock_offset_s"
        case maxBacklog = "max_backlog"
        case backlogEnd = "backlog_end"
        case connectionsOpened = "connections_opened"
        case durationSeconds = "duration_s"
        case ackRoundTripStatistics = "ack_rtt_s"
        case maxConnect = "max_connect"
        case maxConnectScope = "max_connect_scope"
        case errorsByCause = "errors_by_cause"
        case eventBytes = "event_bytes"
        case subscribers
        case subscribersDropped = "subscribers_dropped"
        case failovers, failbacks, lost, targets
        case duplicatesSent = "duplicates_sent"
        case seenBefore = "seen_before"
        case failoverMode = "failover"
    }

    /// Written, not read back: derived from the other keys.
    private enum DerivedKeys: String, CodingKey { case ackedPerSecond = "acked_per_s" }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(events, forKey: .events)
        try c.encode(sent, forKey: .sent)
        try c.encode(acked, forKey: .acked)
        try c.encode(nakked, forKey: .nakked)
        try c.encode(failed, forKey: .failed)
        try c.encode(notSent, forKey: .notSent)
        try c.encode(maxBacklog, forKey: .maxBacklog)
        try c.encode(backlogEnd, forKey: .backlogEnd)
        try c.encode(connectionsOpened, forKey: .connectionsOpened)
        try c.encode(durationSeconds, forKey: .durationSeconds)
        // Optionals encoded as null, not left out: "not measured" is stated.
        try c.encode(ackRoundTripStatistics, forKey: .ackRoundTripStatistics)
        try c.encode(retries, forKey: .retries)
        try c.encode(errors, forKey: .errors)
        try c.encode(errorsByCause, forKey: .errorsByCause)
        try c.encode(mode, forKey: .mode)
        try c.encode(maxConnect, forKey: .maxConnect)
        try c.encode(maxConnectScope, forKey: .maxConnectScope)
        try c.encode(window, forKey: .window)
        try c.encode(bursts, forKey: .bursts)
        try c.encode(clockOffset, forKey: .clockOffset)
        try c.encode(eventBytes, forKey: .eventBytes)
        try c.encodeIfPresent(subscribers, forKey: .subscribers)
        try c.encodeIfPresent(subscribersDropped, forKey: .subscribersDropped)
        try c.encodeIfPresent(failovers, forKey: .failovers)
        try c.encodeIfPresent(failbacks, forKey: .failbacks)
        try c.encodeIfPresent(lost, forKey: .lost)
        try c.encodeIfPresent(duplicatesSent, forKey: .duplicatesSent)
        try c.encodeIfPresent(seenBefore, forKey: .seenBefore)
        try c.encodeIfPresent(targets, forKey: .targets)
        try c.encodeIfPresent(failoverMode, forKey: .failoverMode)
        var derived = encoder.container(keyedBy: DerivedKeys.self)
        try derived.encode(ackedPerSecond, forKey: .ackedPerSecond)
    }
}

/// One subscriber of `vtp-sender --broadcast` in its summary.
public struct BroadcastSubscriberSummary: Codable, Sendable, Equatable {
    public var peer: String
    /// Events written to it.
    public var sent: Int
    public var acked: Int
    public var nakked: Int
    /// It was dropped (an ack overdue past ack_timeout, or an iamalive not answered); `dropReason` says which.
    public var dropped: Bool
    /// JSON `null` when it was not dropped.
    @NullWhenNil public var dropReason: String?

    public init(peer: String, sent: Int, acked: Int, nakked: Int, dropped: Bool, dropReason: String?) {
        self.peer = peer
        self.sent = sent
        self.acked = acked
        self.nakked = nakked
        self.dropped = dropped
        self.dropReason = dropReason
    }

    enum CodingKeys: String, CodingKey {
        case peer, sent, acked, nakked, dropped
        case dropReason = "drop_reason"
    }
}

public enum SummaryFile {
    public static func write<T: Encodable>(_ value: T, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var data = try encoder.encode(value)
        data.append(0x0A)
        do {
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw TransportError.cannotWrite(path: path, reason: (error as NSError).localizedDescription)
        }
    }
}

public enum TransportError: Error, CustomStringConvertible {
    case cannotWrite(path: String, reason: String)
    case cannotBind(host: String, port: Int, reason: String)

    public var description: String {
        switch self {
        case .cannotWrite(let path, let reason): return "cannot write \(path): \(reason)"
        case .cannotBind(let host, let port, let reason): return "cannot listen on \(host):\(port): \(reason)"
        }
    }
}

/// Writes report lines at once (stdout may be a pipe); a stdout that cannot be written (a
/// full disk) is said once on stderr and the run goes on.
public enum LineOutput {
    public static func print(_ line: String) {
        StandardStreams.out(line)
    }

    public static func printError(_ line: String) {
        StandardStreams.err(line)
    }
}
