import Foundation
import PGSniff
import PacketCapture
import VTPWire

/// A pcap file from anywhere, as `vtp-capture analyze` and `pgprobe sniff --file` read it: the
/// file reader, the link layers, TCP reassembly, then VTP framing and parsing (with the
/// events CSV and the JSON report) and the PostgreSQL inference (with its report lines).
enum PcapTarget {
    static let vtpPort: UInt16 = 8098
    static let postgresPort: UInt16 = 5432
    /// Made once and copied for each input: what a fresh one is, without allocating and
    /// clearing its HdrHistograms (256 KiB each) for every input; a copy shares them until it
    /// records into one.
    static let freshAnalyzer = VTPWireAnalyzer(port: nil)
    static let freshStatistics = SniffStatistics(includeStartup: true)

    static func run(_ bytes: UnsafeRawBufferPointer) {
        guard let reader = try? PcapFileReader(bytes: Array(bytes), name: "fuzz.pcap") else { return }
        guard LinkType.isSupported(reader.linkType) else { return }
        var vtp = freshAnalyzer
        var postgres = PGLatencyInference(serverPorts: [postgresPort])
        var extractor = SegmentExtractor(linkType: reader.linkType)
        // Taken at the first timing, and the VTP report only when there is something to report.
        var statistics: SniffStatistics?
        var lines = 0
        func record(_ timing: PGQueryTiming) {
            if statistics == nil { statistics = freshStatistics }
            lines += statistics!.add(timing).utf8.count
        }
        while let packet = try? reader.next() {
            _ = vtp.add(packet, linkType: reader.linkType)
            guard let segment = extractor.segment(from: packet) else { continue }
            for timing in postgres.ingest(segment) { record(timing) }
        }
        _ = vtp.finish()
        for timing in postgres.finish() { record(timing) }
        if let statistics {
            _ = statistics.requestsPerSecond
            _ = [statistics.response.line, statistics.ackDelay.line]
        }
        _ = extractor.counters.line
        // The report walks HdrHistograms (milliseconds under coverage instrumentation, whatever
        // the input): only with something to report, and one input in eight, chosen by its bytes.
        guard !vtp.events.isEmpty || vtp.reassembler.totals.handshakesCompleted > 0 else { return }
        var splits = SplitPoints(bytes)
        guard splits.next() % 8 == 0 else { return }
        let report = vtp.report()
        do {
            _ = try JSONEncoder().encode(report)
            _ = try JSONEncoder().encode(postgres.counters)
        } catch {
            FuzzCheck.expect(false, "a capture report does not encode: \(error)")
        }
        _ = WireReportText.lines(report, source: "fuzz.pcap")
        _ = WireEventsCSV.text(vtp.events)
    }
}
