import LatencyStats
import NIOConcurrencyHelpers
import VTPProtocol

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
}

/// Counters and latency recorders shared by every receiver connection.
public final class ReceiverStatistics: @unchecked Sendable {
    private let lock = NIOLock()
    private var interval = LatencyRecorder()
    private var cumulative = LatencyRecorder()
    private var sequences = SequenceTracker()
    private var received = 0
    private var intervalReceived = 0
    private var naks = 0
    private var warmupExcluded = 0
    private var connectionsAccepted = 0
    private var openConnections = 0
    private var framingErrors = 0
    private var firstEventNanos: Int64?
    private var withinClockError = 0
    private var latestClockOffset: (offsetNanos: Int64, errorNanos: Int64)?
    private let warmupNanos: Int64
    private let startNanos = WallClock.nowNanos()

    public init(warmupSeconds: Double) {
        // Saturating: Int64(_:) traps on infinity and on values past Int64.max.
        let nanos = warmupSeconds * 1e9
        warmupNanos = nanos >= 9.2e18 ? .max : nanos > 0 ? Int64(nanos) : 0
    }

    /// Records one event; returns it annotated and the running total.
    public func record(_ event: ReceivedEvent) -> (event: ReceivedEvent, total: Int) {
        lock.withLock {
            var event = event
            received += 1
            intervalReceived += 1
            if let clock = event.senderClockOffset {
                latestClockOffset = clock
                if event.withinClockError { withinClockError += 1 }
            }
            if let sequence = event.sequence { _ = sequences.record(run: event.runID ?? "", sequence: sequence) }
            // Warm-up is measured from the first event, so a late sender still gets one. Two
            // loops may record out of timestamp order: anchor on the earliest time seen.
            let first = min(firstEventNanos ?? event.receivedNanos, event.receivedNanos)
            firstEventNanos = first
            if warmupNanos > 0 && event.receivedNanos - first < warmupNanos {
                event.inWarmup = true
                warmupExcluded += 1
            } else {
                interval.record(nanos: event.latencyNanos)
            }
            return (event, received)
        }
    }

    public func recordNak() { lock.withLock { naks += 1 } }
    public func recordFramingError() { lock.withLock { framingErrors += 1 } }
    public func connectionOpened() { lock.withLock { connectionsAccepted += 1; openConnections += 1 } }
    public func connectionClosed() { lock.withLock { openConnections -= 1 } }
    public var receivedCount: Int { lock.withLock { received } }

    /// The report lines for one interval; folds the interval into the cumulative totals.
    public func reportLines() -> [String] {
        lock.withLock {
            let intervalSummary = interval.summary
            cumulative.merge(interval)
            interval.reset()
            let total = cumulative.summary
            var lines = [ReceiverReport.headline(received: received, latency: cumulative.count > 0 ? total : nil)]
            var detail = "  "
            if total.count > 0 { detail += total.percentileLine + "; " }
            detail += "last interval \(intervalReceived) events"
            if intervalSummary.count > 0 { detail += " avg \(Fixed.format(intervalSummary.mean, decimals: 6))s" }
            detail += "; naks \(naks), duplicates \(sequences.duplicates), missing \(sequences.missing)"
                + ", out of order \(sequences.outOfOrder), open connections \(openConnections)"
            if warmupExcluded > 0 { detail += ", warm-up excluded \(warmupExcluded)" }
            if sequences.outOfRange > 0 { detail += ", sequence out of range \(sequences.outOfRange)" }
            lines.append(detail)
            if let clock = latestClockOffset {
                lines.append(
                    "  clock offset (receiver - sender, sender's estimate) \(Fixed.signedMilliseconds(Double(clock.offsetNanos) / 1e9))"
                        + " ±\(Fixed.milliseconds(Double(clock.errorNanos) / 1e9)); "
                        + "\(withinClockError) latencies within the error bound")
            }
            intervalReceived = 0
            return lines
        }
    }

    public func summary() -> ReceiverSummary {
        lock.withLock {
            var all = cumulative
            all.merge(interval)
            return ReceiverSummary(
                received: received, unique: sequences.unique, duplicates: sequences.duplicates,
                missing: sequences.missing, outOfOrder: sequences.outOfOrder, naks: naks, latency: all.summary,
                warmupExcluded: warmupExcluded, connectionsAccepted: connectionsAccepted,
                framingErrors: framingErrors, negativeLatencies: all.negativeCount,
                durationSeconds: Double(WallClock.nowNanos() - startNanos) / 1e9,
                clockOffset: latestClockOffset.map {
                    ClockOffsetSummary(offset: Double($0.offsetNanos) / 1e9, errorBound: Double($0.errorNanos) / 1e9, samples: nil)
                },
                withinClockError: withinClockError, sequenceOutOfRange: sequences.outOfRange)
        }
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
}
