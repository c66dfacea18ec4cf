import BenchConfig
import CommandLineKit
import LatencyStats
import Synchronization
import Protocol

/// One event as the receiver saw it (what `--events-csv` writes and observers get).
public struct ReceivedEvent: Sendable {
    public var sequence: UInt64?
    public var runID: String?
    public var ivorn: String
    public var sentNanos: Int64
    public var receivedNanos: Int64
    /// received − sent, saturating: the sent time comes off the network and may be any Int64.
    public var latencyNanos: Int64 {
        let (difference, overflow) = receivedNanos.subtractingReportingOverflow(sentNanos)
        return overflow ? (sentNanos < 0 ? .max : .min) : difference
    }
    /// The sender's address and port (for matching with a packet capture).
    public var remoteAddress: String?
    public var remotePort: Int?
    public var inWarmup: Bool
    /// The sender's clock-offset estimate (receiver − sender) carried by the event.
    public var senderClockOffset: (offsetNanos: Int64, errorNanos: Int64)? = nil
    public init(
        sequence: UInt64?, runID: String?, ivorn: String, sentNanos: Int64, receivedNanos: Int64,
        remoteAddress: String?, remotePort: Int?, inWarmup: Bool,
        senderClockOffset: (offsetNanos: Int64, errorNanos: Int64)? = nil
    ) {
        self.sequence = sequence
        self.runID = runID
        self.ivorn = ivorn
        self.sentNanos = sentNanos
        self.receivedNanos = receivedNanos
        self.remoteAddress = remoteAddress
        self.remotePort = remotePort
        self.inWarmup = inWarmup
        self.senderClockOffset = senderClockOffset
    }

    /// |latency| is within the clock error bound: not distinguishable from clock offset.
    public var withinClockError: Bool {
        guard let clock = senderClockOffset else { return false }
        return latencyNanos.magnitude <= clock.errorNanos  // magnitude: abs(Int64.min) traps
    }

    /// A latency beyond ±1 day: the sender's timestamp is broken or hostile, not slow. Such
    /// events are acked and counted, but would only wreck the statistics.
    public static let maximumPlausibleLatencyNanos: UInt64 = 86_400 * 1_000_000_000

    public var implausibleTimestamp: Bool { latencyNanos.magnitude > Self.maximumPlausibleLatencyNanos }
}

/// The warm-up: events within `nanos` of the first event any loop received are counted but
/// left out of the statistics (measured from the first event, so a late sender still gets one).
///
/// The first event's time is the one value every loop needs per event, so it is shared, as an
/// atomic minimum: one relaxed load per event once set, a compare-exchange only while it moves
/// earlier (two loops may record out of timestamp order).
public final class WarmupWindow: Sendable {
    public let nanos: Int64
    private let firstEventNanos = Atomic<Int64>(.max)

    public init(seconds: Double) { nanos = DurationRule.nanoseconds(seconds) }

    /// Whether an event received at `receivedNanos` falls in the warm-up.
    public func contains(_ receivedNanos: Int64) -> Bool {
        guard nanos > 0 else { return false }
        var first = firstEventNanos.load(ordering: .relaxed)
        while receivedNanos < first {
            let (exchanged, original) = firstEventNanos.compareExchange(
                expected: first, desired: receivedNanos, ordering: .relaxed)
            first = exchanged ? receivedNanos : original
        }
        let (since, overflow) = receivedNanos.subtractingReportingOverflow(first)
        return !overflow && since < nanos
    }
}

/// Counts and latency samples of some share of the receiver's events: one event loop's since
/// the last report (owned by that loop), or everything so far (owned by the home loop).
/// Every field adds up, so shares merge by addition.
public struct ReceiverTally: Sendable {
    public struct ClockReading: Sendable, Equatable {
        public var offsetNanos: Int64
        public var errorNanos: Int64
        /// When the event carrying it arrived: the latest reading wins a merge.
        public var receivedNanos: Int64
    }

    public var received = 0
    public var naks = 0
    public var framingErrors = 0
    public var connectionsOpened = 0
    public var connectionsClosed = 0
    public var warmupExcluded = 0
    public var implausibleTimestamps = 0
    public var withinClockError = 0
    /// Latencies of events neither in the warm-up nor with an implausible timestamp.
    public var latency = LatencyRecorder()
    /// The same latencies in `--metrics`' Prometheus buckets.
    public var latencyBuckets = ExponentialBuckets()
    public var firstEventNanos: Int64?
    public var lastEventNanos: Int64?
    /// The sender's latest clock-offset estimate (receiver − sender), relayed in its events.
    public var clockOffset: ClockReading?

    public init() {}

    /// Counts one event; returns it with `inWarmup` set.
    public mutating func record(_ event: ReceivedEvent, warmup: WarmupWindow) -> ReceivedEvent {
        var event = event
        received += 1
        firstEventNanos = min(firstEventNanos ?? event.receivedNanos, event.receivedNanos)
        lastEventNanos = max(lastEventNanos ?? event.receivedNanos, event.receivedNanos)
        if let clock = event.senderClockOffset {
            if event.receivedNanos >= clockOffset?.receivedNanos ?? .min {
                clockOffset = ClockReading(
                    offsetNanos: clock.offsetNanos, errorNanos: clock.errorNanos, receivedNanos: event.receivedNanos)
            }
            if event.withinClockError { withinClockError += 1 }
        }
        event.inWarmup = warmup.contains(event.receivedNanos)
        if event.implausibleTimestamp {
            implausibleTimestamps += 1
        } else if event.inWarmup {
            warmupExcluded += 1
        } else {
            latency.record(nanos: event.latencyNanos)
            latencyBuckets.record(nanos: event.latencyNanos)
        }
        return event
    }

    public mutating func merge(_ other: ReceiverTally) {
        received += other.received
        naks += other.naks
        framingErrors += other.framingErrors
        connectionsOpened += other.connectionsOpened
        connectionsClosed += other.connectionsClosed
        warmupExcluded += other.warmupExcluded
        implausibleTimestamps += other.implausibleTimestamps
        withinClockError += other.withinClockError
        latency.merge(other.latency)
        latencyBuckets.merge(other.latencyBuckets)
        if let first = other.firstEventNanos { firstEventNanos = min(firstEventNanos ?? first, first) }
        if let last = other.lastEventNanos { lastEventNanos = max(lastEventNanos ?? last, last) }
        if let clock = other.clockOffset, clock.receivedNanos >= clockOffset?.receivedNanos ?? .min {
            clockOffset = clock
        }
    }

    /// Returns the tally and starts a new one.
    public mutating func take() -> ReceiverTally {
        defer { self = ReceiverTally() }
        return self
    }

    /// Nothing happened: no event, nak, framing error, and no connection opened or closed.
    public var isQuiet: Bool {
        received == 0 && naks == 0 && framingErrors == 0 && connectionsOpened == 0 && connectionsClosed == 0
    }

    /// Events per second from the first event to the last (n/a below two events).
    public var eventsPerSecond: Double? {
        guard received >= 2, let first = firstEventNanos, let last = lastEventNanos, last > first else { return nil }
        return Double(received - 1) / (Double(last) / 1e9 - Double(first) / 1e9)
    }
}

/// One sequence number as received, for the home loop's tracker.
public struct SequenceSample: Sendable, Equatable {
    public var run: String
    public var sequence: UInt64
    public init(run: String, sequence: UInt64) {
        self.run = run
        self.sequence = sequence
    }
}

/// The receiver's merged statistics: the loops' tallies folded in at each report, and every
/// sequence number. Owned by the home loop; a plain value, tested without channels.
public struct ReceiverStatistics: Sendable {
    /// Everything folded in so far.
    public private(set) var totals = ReceiverTally()
    public private(set) var sequences = SequenceTracker()
    private let startNanos: Int64
    private var lastReportNanos: Int64
    /// The idle line was printed and nothing has happened since.
    private var idleAnnounced = false
    /// Duplicates counted up to the last stored interval.
    private var duplicatesStored = 0

    public init(startNanos: Int64 = WallClock.nowNanos()) {
        self.startNanos = startNanos
        lastReportNanos = startNanos
    }

    public mutating func record(sequences samples: [SequenceSample]) {
        for sample in samples { _ = sequences.record(run: sample.run, sequence: sample.sequence) }
    }

    public mutating func absorb(_ share: ReceiverTally) { totals.merge(share) }

    /// Folds in what happened since the last report; returns the lines to print: the 2012
    /// line and ours, or, once idle, a single line saying since when, then nothing until
    /// something happens again.
    public mutating func report(adding interval: ReceiverTally, nowNanos: Int64) -> [String] {
        totals.merge(interval)
        let (elapsed, overflow) = nowNanos.subtractingReportingOverflow(lastReportNanos)
        lastReportNanos = nowNanos
        if interval.isQuiet {
            guard !idleAnnounced else { return [] }
            idleAnnounced = true
            return [ReceiverReport.idleLine(lastEventNanos: totals.lastEventNanos, startNanos: startNanos)]
        }
        idleAnnounced = false
        let latency = totals.latency.count > 0 ? totals.latency.summary : nil
        let seconds = overflow || elapsed <= 0 ? nil : Double(elapsed) / 1e9
        var lines = [
            ReceiverReport.headline(received: totals.received, latency: latency),
            "  " + ReceiverReport.latencyLine(latency) + "; "
                + Human.rate(totals.eventsPerSecond, unit: "events") + " overall",
            "  last \(Human.duration(seconds: seconds)): \(Human.grouped(Int64(interval.received))) events, "
                + Human.rate(seconds.map { Double(interval.received) / $0 }, unit: "events") + "; "
                + counters(openConnections: totals.connectionsOpened - totals.connectionsClosed),
        ]
        if let clock = totals.clockOffset {
            lines.append(
                "  clock offset (receiver - sender, sender's estimate) \(Human.signedDuration(seconds: Double(clock.offsetNanos) / 1e9))"
                    + " ±\(Human.duration(seconds: Double(clock.errorNanos) / 1e9)); "
                    + "\(totals.withinClockError) latencies within the error bound")
        }
        return lines
    }

    /// The stored form of an interval already folded in (by `report(adding:)` or `absorb`):
    /// its own counters and histogram, and the state at its end (missing, open connections).
    public mutating func storedInterval(_ interval: ReceiverTally, startNanos: Int64, endNanos: Int64) -> ReportInterval {
        defer { duplicatesStored = sequences.duplicates }
        return ReportInterval(
            startNanos: startNanos, endNanos: endNanos, events: interval.received, latency: interval.latency,
            naks: interval.naks, errors: interval.framingErrors, duplicates: sequences.duplicates - duplicatesStored,
            missing: sequences.missing, openConnections: totals.connectionsOpened - totals.connectionsClosed)
    }

    private func counters(openConnections: Int) -> String {
        var text = "naks \(totals.naks), duplicates \(sequences.duplicates), missing \(sequences.missing)"
            + ", out of order \(sequences.outOfOrder), open connections \(openConnections)"
        if totals.warmupExcluded > 0 { text += ", warm-up excluded \(totals.warmupExcluded)" }
        if sequences.outOfRange > 0 { text += ", sequence out of range \(sequences.outOfRange)" }
        if totals.implausibleTimestamps > 0 { text += ", implausible timestamps \(totals.implausibleTimestamps)" }
        if sequences.untrackedRuns > 0 { text += ", untracked runs \(sequences.untrackedRuns)" }
        return text
    }

    public func summary(nowNanos: Int64 = WallClock.nowNanos()) -> ReceiverSummary {
        let (elapsed, overflow) = nowNanos.subtractingReportingOverflow(startNanos)
        return ReceiverSummary(
            received: totals.received, unique: sequences.unique, duplicates: sequences.duplicates,
            missing: sequences.missing, outOfOrder: sequences.outOfOrder, naks: totals.naks,
            latency: totals.latency.summary, warmupExcluded: totals.warmupExcluded,
            connectionsAccepted: totals.connectionsOpened, framingErrors: totals.framingErrors,
            negativeLatencies: totals.latency.negativeCount, durationSeconds: overflow ? 0 : Double(elapsed) / 1e9,
            clockOffset: totals.clockOffset.map {
                ClockOffsetSummary(
                    offset: Double($0.offsetNanos) / 1e9, errorBound: Double($0.errorNanos) / 1e9, samples: nil)
            },
            withinClockError: totals.withinClockError, sequenceOutOfRange: sequences.outOfRange,
            implausibleTimestamps: totals.implausibleTimestamps, untrackedRuns: sequences.untrackedRuns,
            eventsPerSecond: totals.eventsPerSecond)
    }
}

public enum ReceiverReport {
    /// The 2012 benchmark's line, kept exactly:
    /// `Received 345 events; Latency 0.735258/0.742203/0.736839s (min/max/avg)`
    public static func headline(received: Int, latency: LatencySummary?) -> String {
        guard let latency else { return "Received \(received) events; Latency n/a (min/max/avg)" }
        return "Received \(received) events; Latency \(Fixed.format(latency.min, decimals: 6))/"
            + "\(Fixed.format(latency.max, decimals: 6))/\(Fixed.format(latency.mean, decimals: 6))s (min/max/avg)"
    }

    /// Ours, under it: `latency min/avg/max 0.735/0.737/0.742 s, p50/p90/p99/p99.9 …`.
    public static func latencyLine(_ latency: LatencySummary?) -> String {
        "latency " + Human.minAvgMax(min: latency?.min, avg: latency?.mean, max: latency?.max) + ", "
            + Human.percentiles([
                ("p50", latency?.p50), ("p90", latency?.p90), ("p99", latency?.p99), ("p99.9", latency?.p999),
            ])
    }

    public static func idleLine(lastEventNanos: Int64?, startNanos: Int64) -> String {
        guard let lastEventNanos else {
            return "Idle since \(ISO8601Time.formatSeconds(nanos: startNanos)) (start, no events yet); "
                + "reports resume when events arrive"
        }
        return "Idle since \(ISO8601Time.formatSeconds(nanos: lastEventNanos)) (the last event); "
            + "reports resume when events arrive"
    }
}
