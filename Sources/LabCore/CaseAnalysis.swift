import CommandLineKit
import LatencyStats

/// Where every event of a case ended up when the sender stopped. The terms are disjoint and add
/// up to `events` (the identity every row keeps, checked in tests):
///
///     acked + nakked + in_flight + backlog_end + not_sent = events
///
/// - `backlog_end`: waiting in the sender for a connection (retries included);
/// - `in_flight`: on a connection (being set up, written, or waiting for its ack) without an answer;
/// - `not_sent`: never scheduled, because the run was stopped early (0 for a complete run).
///
/// `failed` = `in_flight` + `backlog_end`: generated, never answered. The sender's `sent` key
/// (events written at least once) is not a term: a retried event is both `sent` and in the
/// backlog, and a written event waiting for its ack is both `sent` and `in_flight`.
public struct CaseAccounting: Sendable, Equatable {
    public var events: Int
    public var acked: Int
    public var nakked: Int
    public var backlogEnd: Int
    public var notSent: Int

    public init(events: Int, acked: Int, nakked: Int, backlogEnd: Int, notSent: Int) {
        self.events = events
        self.acked = acked
        self.nakked = nakked
        self.backlogEnd = backlogEnd
        self.notSent = notSent
    }

    /// For a sender that does not report `not_sent`: events scheduled after it stopped (the
    /// `EventTimeline` rule), at most the unanswered events outside the backlog, so the identity
    /// still holds exactly.
    public static func estimatedNotSent(
        events: Int, acked: Int, nakked: Int, backlogEnd: Int, intervalNanos: Int64, senderElapsedNanos: Int64
    ) -> Int {
        let generated = EventTimeline.generated(
            events: events, intervalNanos: intervalNanos, senderElapsedNanos: senderElapsedNanos)
        return max(0, min(events - generated, events - acked - nakked - backlogEnd))
    }

    /// Generated, never answered.
    public var failed: Int { max(0, events - acked - nakked - notSent) }
    /// Left the backlog, not answered. Never negative: the backlog is a subset of the unanswered.
    public var inFlight: Int { max(0, failed - backlogEnd) }
}

/// One event of a case, in the order it was generated: its latency if it arrived, or — if it
/// had not arrived when the sender stopped — its age at that moment, a lower bound on the
/// latency it will have if it ever arrives.
public enum EventLatency: Sendable, Equatable {
    case arrived(nanos: Int64)
    case queued(atLeastNanos: Int64)

    public var nanos: Int64 {
        switch self {
        case .arrived(let nanos), .queued(let nanos): return nanos
        }
    }

    public var isQueued: Bool {
        if case .queued = self { return true }
        return false
    }
}

public enum EventTimeline {
    /// Every generated event in sequence order.
    /// - Parameters:
    ///   - arrivals: sequence number → latency of the event's first arrival (receiver's events CSV).
    ///   - intervalNanos: the sender's spacing between scheduled events (period / events).
    ///   - senderElapsedNanos: how long the sender ran. Event `i` was scheduled at
    ///     `i × intervalNanos` after the sender's start; one not received is `elapsed − that` old
    ///     when the sender stopped. Events scheduled after that were never generated: left out.
    ///   - burstSize: events per scheduled instant (bursts): event `i` is then due at
    ///     `(i / burstSize) × intervalNanos`.
    public static func build(
        events: Int, intervalNanos: Int64, senderElapsedNanos: Int64, arrivals: [Int: Int64], burstSize: Int = 1
    ) -> [EventLatency] {
        let burstSize = max(1, burstSize)
        let count = generated(
            events: events, intervalNanos: intervalNanos, senderElapsedNanos: senderElapsedNanos, burstSize: burstSize)
        var timeline: [EventLatency] = []
        timeline.reserveCapacity(count)
        for sequence in 0..<max(0, events) {
            if let latency = arrivals[sequence] {
                timeline.append(.arrived(nanos: latency))
            } else if sequence < count {
                // No overflow: sequence < generated, so its instant ≤ elapsed.
                timeline.append(
                    .queued(atLeastNanos: senderElapsedNanos - Int64(sequence / burstSize) * max(0, intervalNanos)))
            }
        }
        return timeline
    }

    /// Events scheduled no later than `senderElapsedNanos` after the sender's start.
    public static func generated(events: Int, intervalNanos: Int64, senderElapsedNanos: Int64, burstSize: Int = 1) -> Int {
        guard events > 0 else { return 0 }
        guard intervalNanos > 0 else { return events }
        guard senderElapsedNanos >= 0 else { return 0 }
        let (scheduled, overflow) = (senderElapsedNanos / intervalNanos + 1).multipliedReportingOverflow(by: Int64(max(1, burstSize)))
        return overflow || scheduled >= Int64(events) ? events : Int(scheduled)
    }

    /// Statistics over every generated event, queued ones at their lower bound.
    public static func summary(_ timeline: [EventLatency]) -> LabRow.QueuedLatency? {
        guard !timeline.isEmpty else { return nil }
        var recorder = LatencyRecorder()
        for event in timeline { recorder.record(nanos: event.nanos) }
        let summary = recorder.summary
        return LabRow.QueuedLatency(
            count: timeline.count, queued: timeline.filter(\.isQueued).count, min: summary.min, mean: summary.mean,
            max: summary.max, p50: summary.p50, p99: summary.p99)
    }
}

/// Did the transport keep up with the offered rate? Judged over the measurement window:
///
///     kept_up = backlog_end ≤ max(1, events / 100)
///           AND p50(last third) ≤ p50(first third) + max(10% of the one-way delay, 5 ms)
///
/// The thirds are of the events in the order they were generated, each with its latency, or —
/// if it had not arrived when the sender stopped — its age then (a queued event counts as late,
/// not as missing). A backlog left after the grace period, or latency that grows over the
/// window, means the sender fell behind.
public struct KeptUpVerdict: Sendable, Equatable {
    public var keptUp: Bool
    /// Which figures decided it, e.g. `backlog_end 0 ≤ 13; p50 last third 752 ms ≤ 751 ms + 25 ms`.
    public var detail: String
}

public enum KeptUp {
    public static let growthFractionOfDelay = 0.10
    public static let growthFloorSeconds = 0.005

    /// The largest `backlog_end` that still counts as bounded: 1% of the events, at least 1.
    public static func backlogBound(events: Int) -> Int { max(1, events / 100) }

    /// How much the median may rise from the first third of the window to the last.
    public static func allowedGrowthSeconds(delaySeconds: Double) -> Double {
        max(growthFractionOfDelay * delaySeconds, growthFloorSeconds)
    }

    /// nil when there is nothing to judge (no event generated, or no per-event data).
    public static func judge(
        backlogEnd: Int, events: Int, timeline: [EventLatency], delaySeconds: Double
    ) -> KeptUpVerdict? {
        guard !timeline.isEmpty else { return nil }
        let third = max(1, timeline.count / 3)
        let first = median(timeline.prefix(third).map(\.nanos))
        let last = median(timeline.suffix(third).map(\.nanos))
        let bound = backlogBound(events: events)
        let growth = allowedGrowthSeconds(delaySeconds: delaySeconds)
        // In whole nanoseconds, so that a boundary case does not hinge on floating-point sums.
        let growthNanos = (growth * 1e9).rounded()
        let backlogBounded = backlogEnd <= bound
        let flat = growthNanos.isFinite && growthNanos < 9e18
            ? last.subtractingReportingOverflow(first).partialValue <= Int64(growthNanos) : true
        let detail =
            "backlog_end \(backlogEnd) \(backlogBounded ? "≤" : ">") \(bound); p50 last third "
            + "\(Human.duration(seconds: Double(last) / 1e9)) \(flat ? "≤" : ">") first third "
            + "\(Human.duration(seconds: Double(first) / 1e9)) + \(Human.duration(seconds: growth))"
        return KeptUpVerdict(keptUp: backlogBounded && flat, detail: detail)
    }

    /// The lower middle value (an even count takes the smaller of the two middle ones).
    static func median(_ values: [Int64]) -> Int64 {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[(sorted.count - 1) / 2]
    }
}

/// `vtp-receiver --events-csv`: one line per event received (`seq,ivorn,sent_ns,received_ns,…`).
public enum ReceiverEventsCSV {
    /// Sequence number → latency (received − sent, ns) of each event's first arrival. Columns are
    /// found by the header's names; lines without a sequence number or with unreadable times
    /// are skipped.
    public static func arrivals(_ text: String) -> [Int: Int64] {
        var lines = text.split(whereSeparator: \.isNewline).makeIterator()
        guard let header = lines.next() else { return [:] }
        let names = fields(header)
        guard let seqColumn = names.firstIndex(of: "seq"), let sentColumn = names.firstIndex(of: "sent_ns"),
            let receivedColumn = names.firstIndex(of: "received_ns")
        else { return [:] }
        let needed = max(seqColumn, sentColumn, receivedColumn)
        var result: [Int: Int64] = [:]
        while let line = lines.next() {
            let values = fields(line)
            guard values.count > needed, let sequence = Int(values[seqColumn]), sequence >= 0,
                let sent = Int64(values[sentColumn]), let received = Int64(values[receivedColumn])
            else { continue }
            let (latency, overflow) = received.subtractingReportingOverflow(sent)
            guard !overflow, result[sequence] == nil else { continue }
            result[sequence] = latency
        }
        return result
    }

    /// RFC 4180 fields of one line (quoted fields may hold commas and doubled quotes).
    static func fields(_ line: Substring) -> [String] {
        var fields: [String] = []
        var current = ""
        var quoted = false
        var iterator = line.makeIterator()
        while let character = iterator.next() {
            if quoted {
                if character == "\"" {
                    // A doubled quote inside a quoted field is one quote.
                    if let next = iterator.next() {
                        if next == "\"" {
                            current.append("\"")
                        } else {
                            quoted = false
                            if next == "," {
                                fields.append(current)
                                current = ""
                            } else {
                                current.append(next)
                            }
                        }
                    } else {
                        quoted = false
                    }
                } else {
                    current.append(character)
                }
            } else if character == "\"" {
                quoted = true
            } else if character == "," {
                fields.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        fields.append(current)
        return fields
    }
}
