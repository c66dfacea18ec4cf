import CommandLineKit
import Foundation
import LatencyStats
import PacketCapture

/// Why a capture file could not be analysed at all.
public enum WireFileError: Error, CustomStringConvertible {
    case unreadable(PcapFileError)
    case unsupportedLinkType(path: String, name: String)
    case cannotWrite(path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let error): return error.description
        case .unsupportedLinkType(let path, let name):
            return "\(path): unsupported link type \(name); capture on an Ethernet, loopback or 'any' interface"
        case .cannotWrite(let path, let reason): return "cannot write \(path): \(reason)"
        }
    }
}

/// `vtp-capture analyze`: a whole pcap file through `VTPWireAnalyzer`. A file cut short is
/// still analysed up to the cut (`readError` says where), so its statistics are not lost.
public struct WireFileAnalysis: Sendable {
    public var file: String
    public var linkType: UInt32
    public var precision: TimestampPrecision
    public var report: WireAnalysisReport
    /// Every event seen, in wire order, with its response once it was seen.
    public var events: [WireEvent]
    /// Why reading stopped before the end of the file, if it did.
    public var readError: PcapFileError?

    /// Reads and analyses `path`; throws when the file cannot be read as a pcap capture at all.
    public static func run(path: String, port: UInt16?) throws(WireFileError) -> WireFileAnalysis {
        let reader: PcapFileReader
        do {
            reader = try PcapFileReader(path: path)
        } catch {
            throw .unreadable(error)
        }
        guard LinkType.isSupported(reader.linkType) else {
            throw .unsupportedLinkType(path: path, name: LinkType.name(reader.linkType))
        }
        var analyzer = VTPWireAnalyzer(port: port)
        var readError: PcapFileError?
        do {
            while let packet = try reader.next() { _ = analyzer.add(packet, linkType: reader.linkType) }
        } catch {
            readError = error
        }
        _ = analyzer.finish()
        return WireFileAnalysis(
            file: path, linkType: reader.linkType, precision: reader.precision, report: analyzer.report(),
            events: analyzer.events, readError: readError)
    }

    /// The text report.
    public var lines: [String] {
        ["\(file): \(LinkType.name(linkType)), \(precision) timestamps"] + WireReportText.lines(report, source: file)
    }

    /// The `--json` report: file, link type, precision, the read error if any and the report's
    /// keys, flat, with the run's metadata (`run_id`, `version`, `host`, `started_at`, `settings`).
    public func json(metadata: RunMetadata = RunMetadata(), port: UInt16?) throws -> Data {
        let analysis = AnalysisJSON(
            file: file, linkType: LinkType.name(linkType), precision: precision, error: readError.map(\.description),
            report: report)
        var settings: [String: Any] = ["file": file]
        if let port { settings["port"] = Int(port) }
        let object = try SummaryJSON.object(analysis, metadata: metadata, settings: settings)
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }
}

struct AnalysisJSON: Encodable {
    var file: String
    var linkType: String
    var precision: TimestampPrecision
    var error: String?
    var report: WireAnalysisReport

    enum CodingKeys: String, CodingKey { case file, error, precision, linkType = "link_type" }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(file, forKey: .file)
        try container.encode(linkType, forKey: .linkType)
        try container.encode(precision, forKey: .precision)
        try container.encodeIfPresent(error, forKey: .error)
        try report.encode(to: encoder)  // the report's keys sit beside these, flat
    }
}

/// `vtp-capture analyze --events-csv`: one row per event seen on the wire.
public enum WireEventsCSV {
    public static let header = "seq,ivorn,client,sent_ns,wire_ns,wire_latency_s,ack_rtt_s"

    public static func row(_ event: WireEvent) -> String {
        CSV.row([
            event.sequence.map(String.init) ?? "", event.ivorn, event.client.description,
            event.sentNanos.map(String.init) ?? "", String(event.wireNanos),
            event.wireLatencyNanos.map(seconds) ?? "", event.ackRoundTripNanos.map(seconds) ?? "",
        ])
    }

    public static func text(_ events: [WireEvent]) -> String {
        events.reduce(into: header + "\n") { text, event in text += row(event) + "\n" }
    }

    /// Writes the file atomically.
    public static func write(_ events: [WireEvent], to path: String) throws(WireFileError) {
        do {
            try Data(text(events).utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw .cannotWrite(path: path, reason: UserMessage.describe(error))
        }
    }

    /// Nanoseconds as seconds with 9 decimals: exact, and what the columns' `_s` promises.
    static func seconds(_ nanos: Int64) -> String { Fixed.format(Double(nanos) / 1e9, decimals: 9) }
}
