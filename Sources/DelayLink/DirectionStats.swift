import LatencyStats

/// Counters and release accuracy for one direction.
public struct DirectionStats: Sendable {
    public var forwardedPackets = 0
    public var forwardedBytes = 0
    public var gsoPackets = 0
    public var lostPackets = 0
    public var queueFullDrops = 0
    public var writeErrors = 0
    public var maxQueuedPackets = 0
    /// Actual write time − scheduled release time, per packet.
    public var releaseError = LatencyRecorder()

    public init() {}

    public mutating func merge(_ other: DirectionStats) {
        forwardedPackets += other.forwardedPackets
        forwardedBytes += other.forwardedBytes
        gsoPackets += other.gsoPackets
        lostPackets += other.lostPackets
        queueFullDrops += other.queueFullDrops
        writeErrors += other.writeErrors
        maxQueuedPackets = max(maxQueuedPackets, other.maxQueuedPackets)
        releaseError.merge(other.releaseError)
    }

    public var report: DirectionReport {
        DirectionReport(
            forwarded_packets: forwardedPackets, forwarded_bytes: forwardedBytes, gso_packets: gsoPackets,
            lost_packets: lostPackets, queue_full_drops: queueFullDrops, write_errors: writeErrors,
            max_queued_packets: maxQueuedPackets, release_error_s: releaseError.summary)
    }

    /// `a→b 1234 pkts 5.6 MB, lost 0, drops 0, release error p50/p99/max 0.041/0.210/1.302 ms`
    public func line(label: String) -> String {
        let error = releaseError.summary
        return "\(label) \(forwardedPackets) pkts \(Fixed.format(Double(forwardedBytes) / 1e6, decimals: 1)) MB"
            + " (\(gsoPackets) GSO), lost \(lostPackets), queue drops \(queueFullDrops), write errors \(writeErrors)"
            + ", max queued \(maxQueuedPackets), release error p50/p99/max "
            + [error.p50, error.p99, error.max].map { Fixed.format($0 * 1000, decimals: 3) }.joined(separator: "/")
            + " ms"
    }
}

/// The JSON shape of one direction in `--summary-json` (keys are an interface).
public struct DirectionReport: Codable, Sendable, Equatable {
    public var forwarded_packets: Int
    public var forwarded_bytes: Int
    public var gso_packets: Int
    public var lost_packets: Int
    public var queue_full_drops: Int
    public var write_errors: Int
    public var max_queued_packets: Int
    public var release_error_s: LatencySummary
}

public struct LinkReport: Codable, Sendable, Equatable {
    public var a_to_b: DirectionReport
    public var b_to_a: DirectionReport
    public var duration_s: Double
    public var realtime_scheduling: Bool
}
