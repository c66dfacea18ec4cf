import ArgumentParser
import Foundation
import LatencyStats
import PacketCapture
import VTPWire

struct CaptureCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vtp-capture",
        abstract: "Cross-check VTP event timing from packet captures.",
        subcommands: [Analyze.self, Record.self])
}

struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reassemble the VTP streams of a pcap file and report per-event wire timing.",
        discussion: """
            Reads a classic pcap file (tcpdump -w; microsecond or nanosecond timestamps; Ethernet, \
            Linux cooked SLL/SLL2, raw IP or loopback link types). Wire latency = capture time of \
            the segment carrying an event's last byte - the send time embedded in the event, so \
            the capturing host's clock must be synchronised with the sender's. The ack round trip \
            and handshake times need no synchronisation (one clock).
            """)

    @Argument(help: "pcap file to read.") var file: String
    @Option(help: "Only TCP traffic to or from this port (the receiver's); also decides which side is the server when a capture misses the SYN.")
    var port: Int?
    @Flag(help: "Print machine-readable JSON instead of text.") var json = false
    @Option(name: .customLong("events-csv"), help: "Write one row per event: seq, ivorn, client, sent_ns, wire_ns, wire_latency_s, ack_rtt_s.")
    var eventsCSV: String?

    func validate() throws {
        if let port, !(1...65535).contains(port) { throw ValidationError("--port must be 1-65535") }
    }

    func run() throws {
        let reader: PcapFileReader
        do {
            reader = try PcapFileReader(path: file)
        } catch {
            throw fail(error)
        }
        guard LinkType.isSupported(reader.linkType) else {
            throw fail("\(file): unsupported link type \(LinkType.name(reader.linkType)); capture on an Ethernet, loopback or 'any' interface")
        }
        var analyzer = VTPWireAnalyzer(port: port.map { UInt16($0) })
        var readError: PcapFileError?
        do {
            while let packet = try reader.next() { _ = analyzer.add(packet, linkType: reader.linkType) }
        } catch {
            readError = error  // report what was read, then fail
        }
        _ = analyzer.finish()
        let report = analyzer.report()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let output = AnalyzeJSON(
                file: file, linkType: LinkType.name(reader.linkType), precision: reader.precision,
                error: readError.map { "\($0)" }, report: report)
            print(String(decoding: try encoder.encode(output), as: UTF8.self))
        } else {
            print("\(file): \(LinkType.name(reader.linkType)), \(reader.precision) timestamps")
            WireReportText.lines(report, source: file).forEach { print($0) }
        }
        if let eventsCSV { try writeCSV(analyzer.events, to: eventsCSV) }
        if let readError { throw fail("\(readError) (statistics above cover the records before it)") }
    }

    func writeCSV(_ events: [WireEvent], to path: String) throws {
        var text = "seq,ivorn,client,sent_ns,wire_ns,wire_latency_s,ack_rtt_s\n"
        for e in events {
            let latency = e.wireLatencyNanos.map { Fixed.format(Double($0) / 1e9, decimals: 9) } ?? ""
            let rtt = e.ackRoundTripNanos.map { Fixed.format(Double($0) / 1e9, decimals: 9) } ?? ""
            let ivorn = e.ivorn.contains(",") || e.ivorn.contains("\"") ? "\"\(e.ivorn.replacingOccurrences(of: "\"", with: "\"\""))\"" : e.ivorn
            text += "\(e.sequence.map(String.init) ?? ""),\(ivorn),\(e.client),\(e.sentNanos.map(String.init) ?? ""),\(e.wireNanos),\(latency),\(rtt)\n"
        }
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw fail("cannot write \(path): \(error.localizedDescription)")
        }
    }
}

struct AnalyzeJSON: Encodable {
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

struct Record: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Capture a port's TCP traffic to a pcap file (nanosecond timestamps when available).",
        discussion: "Needs root or CAP_NET_RAW. Stops after --seconds or --packets, or on SIGINT.")

    @Option(help: "Interface to capture on (lo for loopback).") var interface: String = "lo"
    @Option(help: "TCP port to capture (both directions).") var port: Int
    @Option(help: "Output pcap file.") var output: String
    @Option(help: "Stop after this many seconds.") var seconds: Double = 10
    @Option(help: "Stop after this many packets.") var packets: Int?

    func validate() throws {
        if !(1...65535).contains(port) { throw ValidationError("--port must be 1-65535") }
        if !(seconds > 0) { throw ValidationError("--seconds must be positive") }
    }

    func run() throws {
        let capture: LiveCapture
        do {
            capture = try LiveCapture(interface: interface, filter: "tcp port \(port)")
        } catch {
            throw fail(error)
        }
        let note = capture.precisionNote.map { " (\($0))" } ?? ""
        FileHandle.standardError.write(Data(
            "vtp-capture: capturing tcp port \(port) on \(interface), \(LiveCapture.linkTypeName(capture.linkType)), \(capture.precision) timestamps\(note)\n".utf8))
        var writer = PcapFileWriter(linkType: capture.linkType == LinkType.rawDLT ? LinkType.raw : capture.linkType, precision: capture.precision)
        let deadline = Date().addingTimeInterval(seconds)
        var count = 0
        StopFlag.install()
        while Date() < deadline && !StopFlag.isSet && (packets.map { count < $0 } ?? true) {
            do {
                try capture.poll(timeoutMillis: 100) { packet in
                    writer.append(packet)
                    count += 1
                }
            } catch {
                throw fail(error)
            }
        }
        let stats = try? capture.statistics()
        capture.close()
        do { try writer.write(to: output) } catch { throw fail(error) }
        FileHandle.standardError.write(Data(
            "vtp-capture: wrote \(count) packets to \(output); kernel dropped \(stats?.dropped ?? 0)\n".utf8))
    }
}

/// SIGINT ends `record` cleanly (the file is still written).
enum StopFlag {
    nonisolated(unsafe) static var flag: sig_atomic_t = 0
    static var isSet: Bool { flag != 0 }
    static func install() { signal(SIGINT) { _ in StopFlag.flag = 1 } }
}

func fail(_ error: Any) -> ExitCode {
    FileHandle.standardError.write(Data("vtp-capture: \(error)\n".utf8))
    return ExitCode(1)
}

CaptureCommand.main()
