import CommandLineKit
import Foundation
import LatencyStats
import PacketCapture
import VTPEngine

/// What `--capture-interface` adds to the receiver's summary (text and `--summary-json`).
public struct WireCheckSummary: Encodable, Sendable, Equatable {
    /// Capture time of each event's last byte − its embedded send time.
    public var wireLatency: LatencySummary
    /// Application reading − capture time: the receiver's own overhead.
    public var appMinusWire: LatencySummary
    /// Events seen on the wire that the application never reported.
    public var wireOnly: Int
    /// Events the application reported that the capture never saw.
    public var appOnly: Int
    public var matched: Int
    public var wireAfterApp: Int
    public var captureInterface: String
    public var capturePrecision: TimestampPrecision
    /// Packets the capture thread processed.
    public var capturePackets: Int
    /// pcap_stats' received count (on Linux `lo` each packet is counted twice: out and in).
    public var captureReceived: UInt64
    public var captureDropped: UInt64
    public var retransmittedSegments: Int
    public var captureGaps: Int
    /// The capture's packets as every capture tool counts them.
    public var decode = DecodeCounters()

    enum CodingKeys: String, CodingKey {
        case matched
        case wireLatency = "wire_latency_s"
        case appMinusWire = "app_minus_wire_s"
        case wireOnly = "wire_only"
        case appOnly = "app_only"
        case wireAfterApp = "wire_after_app"
        case captureInterface = "capture_interface"
        case capturePrecision = "capture_precision"
        case capturePackets = "capture_packets"
        case captureReceived = "capture_kernel_received"
        case captureDropped = "capture_dropped"
        case retransmittedSegments = "retransmitted_segments"
        case captureGaps = "capture_gaps"
        case decode = "capture_decode"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(wireLatency, nullIf: wireLatency.count == 0, forKey: .wireLatency)
        try c.encode(appMinusWire, nullIf: appMinusWire.count == 0, forKey: .appMinusWire)
        try c.encode(wireOnly, forKey: .wireOnly)
        try c.encode(appOnly, forKey: .appOnly)
        try c.encode(matched, forKey: .matched)
        try c.encode(wireAfterApp, forKey: .wireAfterApp)
        try c.encode(captureInterface, forKey: .captureInterface)
        try c.encode(capturePrecision, forKey: .capturePrecision)
        try c.encode(capturePackets, forKey: .capturePackets)
        try c.encode(captureReceived, forKey: .captureReceived)
        try c.encode(captureDropped, forKey: .captureDropped)
        try c.encode(retransmittedSegments, forKey: .retransmittedSegments)
        try c.encode(captureGaps, forKey: .captureGaps)
        try c.encode(decode, forKey: .decode)
    }

    public var lines: [String] {
        var lines = [
            "wire check (\(captureInterface), \(capturePrecision) timestamps): \(matched) events on wire and in app, "
                + "wire_only \(wireOnly), app_only \(appOnly); capture \(capturePackets) packets, "
                + "\(captureDropped) dropped, \(retransmittedSegments) TCP retransmissions",
            "  wire latency (capture of last byte - send time): " + wireLatency.humanLine,
            "  app latency - wire latency (receiver overhead): " + appMinusWire.humanLine,
            "  " + decode.line,
        ]
        if wireOnly > 0 || appOnly > 0 || captureDropped > 0 || captureGaps > 0 {
            lines.append(
                "  warning: the capture and the application disagree (wire_only \(wireOnly), app_only \(appOnly), "
                    + "dropped \(captureDropped), gaps \(captureGaps)): the capture could not keep up or missed the start")
        }
        if wireAfterApp > 0 { lines.append("  warning: \(wireAfterApp) events read by the app before their capture time") }
        return lines
    }
}

/// The receiver's summary with the wire check's keys beside its own (one flat JSON object).
public struct ReceiverSummaryWithWire: Encodable {
    public var receiver: ReceiverSummary
    public var wire: WireCheckSummary?

    public init(receiver: ReceiverSummary, wire: WireCheckSummary?) {
        self.receiver = receiver
        self.wire = wire
    }

    public func encode(to encoder: Encoder) throws {
        try receiver.encode(to: encoder)
        try wire?.encode(to: encoder)
    }
}

/// `--wire-events-csv`: one row per event seen both on the wire and in the application.
public enum WirePairsCSV {
    public static let header = "ivorn,sent_ns,wire_ns,app_ns,wire_latency_s,app_latency_s,app_minus_wire_s"

    public static func text(_ pairs: [WireAppPair]) -> String {
        var text = header + "\n"
        for p in pairs {
            text += CSV.row(
                [p.ivorn, String(p.sentNanos), String(p.wireNanos), String(p.appNanos)]
                    + [p.wireLatencyNanos, p.appLatencyNanos, p.appMinusWireNanos].map {
                        Fixed.format(Double($0) / 1e9, decimals: 9)
                    }) + "\n"
        }
        return text
    }

    public static func write(_ pairs: [WireAppPair], to path: String) throws {
        do {
            try Data(text(pairs).utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw TransportError.cannotWrite(path: path, reason: UserMessage.describe(error))
        }
    }
}
