import Foundation
import Glibc
import LatencyStats
import PacketCapture
import Synchronization
import Protocol
import VTPWire
import TestSupport
import XCTest

@testable import WireCheck

/// The one set of decode counters, and the reassembler's bookkeeping the consumers rely on.
final class DecodeCountersTests: XCTestCase {
    func testEveryFrameIsCountedWithItsBytesAndWhyItWasSkipped() {
        let c = Conversation()
        var counters = DecodeCounters()
        let data = PacketBuilder.frame(for: c.clientData([1, 2, 3], offset: 0, at: 1), linkType: LinkType.ethernet)
        XCTAssertNotNil(counters.segment(from: CapturedPacket(timestampNanos: 1, data: data), linkType: LinkType.ethernet))
        // ARP: not IP.
        let arp: [UInt8] = [0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06] + [UInt8](repeating: 0, count: 28)
        XCTAssertNil(counters.segment(from: CapturedPacket(timestampNanos: 2, data: arp), linkType: LinkType.ethernet))
        // Cut by a snaplen inside the payload: 10 bytes on the wire that were not captured.
        let cut = CapturedPacket(timestampNanos: 3, originalLength: data.count + 10, data: data)
        var long = c.clientData([UInt8](repeating: 7, count: 13), offset: 3, at: 3)
        long.payload = [UInt8](repeating: 7, count: 13)
        let longFrame = PacketBuilder.frame(for: long, linkType: LinkType.ethernet)
        let truncated = CapturedPacket(timestampNanos: 3, originalLength: longFrame.count, data: Array(longFrame.dropLast(10)))
        XCTAssertNotNil(counters.segment(from: cut, linkType: LinkType.ethernet), "the IP length is what counts")
        XCTAssertNil(counters.segment(from: truncated, linkType: LinkType.ethernet))
        XCTAssertEqual(counters.packets, 4)
        XCTAssertEqual(counters.bytes, UInt64(data.count + arp.count + data.count + 10 + longFrame.count))
        XCTAssertEqual(counters.notTCP, 1)
        XCTAssertEqual(counters.truncated, 1)
        XCTAssertEqual(counters.undecodable, 1)
        var totals = TCPReassembler.Totals()
        totals.gaps = 2
        totals.gapBytes = 30
        counters.update(from: totals)
        counters.update(from: CaptureStatistics(received: 9, dropped: 3, interfaceDropped: 1))
        XCTAssertEqual(counters.reassemblyGaps, 2)
        XCTAssertEqual(counters.captureDropped, 4)
        XCTAssertTrue(counters.line.contains("4 dropped by the kernel, 2 reassembly gaps (30 bytes)"), counters.line)
    }

    /// A new SYN on a 4-tuple replaces the old connection: the old one must not stay behind
    /// (a per-event run reusing ports would otherwise grow the table without bound).
    func testPortReuseForgetsTheReplacedConnection() {
        var reassembler = TCPReassembler()
        let first = Conversation()
        var second = first
        second.clientISN = 900_000
        for segment in [first.syn(at: 1), first.synAck(at: 2), first.ack(at: 3), first.clientData([1], offset: 0, at: 4)] {
            _ = reassembler.process(segment)
        }
        let events = reassembler.process(second.syn(at: 10))
        XCTAssertTrue(events.contains(.closed(connectionID: 1)), "\(events)")
        XCTAssertEqual(reassembler.connections.count, 1)
        XCTAssertEqual(reassembler.forgottenConnections, 1)
        XCTAssertEqual(reassembler.expiredConnections, 0, "replaced, not expired")
    }

    func testSilentConnectionsAreCountedAsExpired() {
        var reassembler = TCPReassembler()
        reassembler.idleRetentionNanos = 1_000_000_000
        let quiet = Conversation()
        let busy = Conversation(client: Endpoint(IPAddress("10.0.0.9")!, 40_001))
        _ = reassembler.process(quiet.syn(at: 0))
        let events = reassembler.process(busy.syn(at: 2_000_000_000))
        XCTAssertTrue(events.contains(.closed(connectionID: 1)))
        XCTAssertEqual(reassembler.expiredConnections, 1)
    }
}

/// `vtp-capture analyze`'s work, in the library.
final class WireFileAnalysisTests: XCTestCase {
    func testAFileIsAnalysedAndItsEventsWrittenAsCSV() throws {
        let c = Conversation()
        let builder = TestEventBuilder(localIVO: "ivo://t/x,comma", eventSize: 400)
        let event = vtpFrame(builder.document(sequence: 4, sentNanos: 1_000))
        let ack = vtpFrame(TransportMessage.ack(eventIVORN: builder.ivorn(sequence: 4), localIVO: nil).xml)
        let segments = [
            c.syn(at: 10), c.synAck(at: 20), c.ack(at: 30), c.clientData(event, offset: 0, at: 5_000),
            c.serverData(ack, offset: 0, at: 9_000),
        ]
        let path = NSTemporaryDirectory() + "vtpbench-analysis-\(getpid()).pcap"
        defer { unlink(path) }
        XCTAssertTrue(
            FileManager.default.createFile(
                atPath: path, contents: Data(pcapFile(segments, linkType: LinkType.ethernet, precision: .nanoseconds))))
        let analysis = try WireFileAnalysis.run(path: path, port: 8098)
        XCTAssertNil(analysis.readError)
        XCTAssertEqual(analysis.report.counts.events, 1)
        XCTAssertEqual(analysis.report.counts.packets, 5)
        XCTAssertEqual(analysis.events.first?.wireLatencyNanos, 4_000)
        XCTAssertTrue(analysis.lines.contains { $0.hasPrefix("wire latency") && $0.contains("min/avg/max 0.00400/0.00400/0.00400 ms") }, "\(analysis.lines)")

        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: analysis.json(port: 8098)) as? [String: Any])
        for key in ["run_id", "version", "host", "started_at", "file", "link_type", "connections", "counts"] {
            XCTAssertNotNil(json[key], key)
        }
        XCTAssertEqual((json["settings"] as? [String: Any])?["port"] as? Int, 8098)
        XCTAssertTrue(json["events_per_s"] is NSNull, "one event has no rate")
        XCTAssertEqual((json["counts"] as? [String: Any])?["packets"] as? Int, 5)

        let csv = WireEventsCSV.text(analysis.events).split(separator: "\n").map(String.init)
        XCTAssertEqual(csv.first, "seq,ivorn,client,sent_ns,wire_ns,wire_latency_s,ack_rtt_s")
        XCTAssertEqual(csv.count, 2)
        // The ivorn holds a comma: quoted, so the row still has seven fields.
        XCTAssertTrue(csv[1].hasPrefix("4,\"ivo://t/x,comma"), csv[1])
        XCTAssertTrue(csv[1].hasSuffix(",10.0.0.1:40000,1000,5000,0.000004000,0.000004000"), csv[1])

        XCTAssertThrowsError(try WireFileAnalysis.run(path: "/nonexistent/x.pcap", port: nil)) {
            XCTAssertTrue("\($0)".contains("/nonexistent/x.pcap: cannot open"), "\($0)")
        }
    }

    /// Nothing measured is `null` in JSON, never a row of zeros.
    func testEmptyStatisticsAreNullInJSON() throws {
        var analyzer = VTPWireAnalyzer(port: 8098)
        _ = analyzer.finish()
        let report = try JSONSerialization.jsonObject(with: JSONEncoder().encode(analyzer.report())) as? [String: Any]
        XCTAssertTrue(report?["wire_latency_s"] is NSNull, "\(String(describing: report))")
        XCTAssertTrue(report?["ack_rtt_s"] is NSNull)
        XCTAssertEqual((report?["counts"] as? [String: Any])?["packets"] as? Int, 0)
        XCTAssertEqual(WireReportText.stat("wire latency", analyzer.report().wireLatency), "wire latency: n/a")
    }
}

/// The capture-thread driver and the wire monitor's per-thread inboxes.
final class CaptureThreadTests: XCTestCase {

    /// Events posted by many threads at once all arrive, each thread's in its order.
    func testInboxKeepsEveryThreadsEventsInOrder() {
        let inbox = AppEventInbox()
        let threads = 4
        let perThread = 2_000
        let taken = Mutex<[AppEvent]>([])
        let group = DispatchGroup()
        for thread in 0..<threads {
            group.enter()
            Thread {
                for index in 0..<perThread {
                    inbox.post(AppEvent(ivorn: "t\(thread)", sentNanos: Int64(index), appNanos: 0, inWarmup: false))
                }
                group.leave()
            }.start()
        }
        // The capture side takes while the posters post.
        while group.wait(timeout: .now() + .milliseconds(1)) == .timedOut {
            let events = inbox.takeAll()
            taken.withLock { $0 += events }
        }
        let events = taken.withLock { $0 } + inbox.takeAll()
        XCTAssertEqual(events.count, threads * perThread)
        for thread in 0..<threads {
            let mine = events.filter { $0.ivorn == "t\(thread)" }.map(\.sentNanos)
            XCTAssertEqual(mine, (0..<Int64(perThread)).map { $0 }, "thread \(thread)")
        }
    }
}

/// vtp-capture as a user meets it: typos, --version, output paths checked before reading.
final class CaptureToolVocabularyTests: XCTestCase {
    var tool: String { productsDirectory.appendingPathComponent("vtp-capture").path }

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: tool) else { throw XCTSkip("vtp-capture not built") }
    }

    func testSubcommandTypoIsSuggested() throws {
        let result = try runProcess(tool, ["analyse", "x.pcap"])
        XCTAssertEqual(result.status, 64)
        XCTAssertEqual(result.stderr, "vtp-capture: unknown subcommand 'analyse'; did you mean 'analyze'?\n")
    }

    func testVersion() throws {
        let result = try runProcess(tool, ["--version"])
        XCTAssertEqual(result.status, 0)
        XCTAssertTrue(result.stdout.hasPrefix("0."), result.stdout)
    }

    func testUnwritableCSVFailsBeforeTheFileIsRead() throws {
        let result = try runProcess(tool, ["analyze", "/nonexistent/capture.pcap", "--events-csv", "/nonexistent/dir/e.csv"])
        XCTAssertEqual(result.status, 64)
        XCTAssertEqual(
            result.stderr, "vtp-capture: --events-csv /nonexistent/dir/e.csv: directory /nonexistent/dir does not exist\n")
        XCTAssertEqual(result.stdout, "")
    }

    func testNegativeNumbersGetARealMessage() throws {
        let result = try runProcess(tool, ["record", "--port", "-5", "--output", "/tmp/x.pcap"])
        XCTAssertEqual(result.status, 64)
        XCTAssertTrue(result.stderr.contains("--port must be 1-65535 (got -5)"), result.stderr)
        let seconds = try runProcess(tool, ["record", "--port", "5", "--output", "/tmp/x.pcap", "--seconds", "-1"])
        XCTAssertEqual(seconds.status, 64)
        XCTAssertFalse(seconds.stderr.contains("Missing value"), seconds.stderr)
    }
}
