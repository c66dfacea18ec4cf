import BenchConfig
import Foundation
import NIOCore
import NIOPosix
import PacketCapture
import VTPEngine
import VTPWire
import WireCheck
import XCTest

/// A real sender → receiver run on loopback, captured live by the receiver's wire check (and by
/// tcpdump, whose file `vtp-capture analyze`'s analyzer then reads).
final class WireCheckEndToEndTests: XCTestCase {
    var group: MultiThreadedEventLoopGroup!

    override func setUp() { group = MultiThreadedEventLoopGroup(numberOfThreads: 2) }
    override func tearDown() { try? group.syncShutdownGracefully() }

    func testEveryEventSeenOnTheWireBeforeTheApplication() throws {
        for (mode, events) in [(SenderMode.perEvent, 300), (.persistent, 600)] {
            let monitor = try LiveWireMonitor(interface: "lo", keepsPairs: true)
            var config = BenchConfiguration()
            config.port = 0
            config.reportInterval = 60
            let receiver = try VTPReceiver(
                options: ReceiverOptions(configuration: config), group: group, output: { _ in }, errorOutput: { _ in },
                observer: monitor.observer)
            let port = try receiver.start().wait().port!
            try monitor.start(port: port)
            let tcpdump = mode == .perEvent ? try TCPDump(port: port) : nil

            var senderConfig = BenchConfiguration()
            senderConfig.port = port
            senderConfig.events = events
            senderConfig.period = 1
            senderConfig.maxConnect = 4
            senderConfig.mode = mode
            senderConfig.reportInterval = 60
            senderConfig.drainTimeout = 20
            let sent = try VTPSender(options: SenderOptions(configuration: senderConfig), group: group, output: { _ in })
                .start().wait()
            receiver.stop()
            let received = try receiver.done.wait()
            let wire = monitor.stop()
            let pairs = monitor.pairs

            let label = mode.rawValue
            XCTAssertEqual(sent.acked, events, label)
            XCTAssertEqual(received.received, events, label)
            XCTAssertEqual(wire.matched, events, label)
            XCTAssertEqual(wire.wireOnly, 0, label)
            XCTAssertEqual(wire.appOnly, 0, label)
            XCTAssertEqual(wire.captureDropped, 0, label)
            XCTAssertEqual(wire.wireLatency.count, events, label)
            XCTAssertEqual(pairs.count, events, label)
            XCTAssertEqual(Set(pairs.map(\.ivorn)).count, events, label)
            for pair in pairs {
                XCTAssertLessThanOrEqual(pair.wireLatencyNanos, pair.appLatencyNanos, "\(label) \(pair.ivorn)")
                XCTAssertGreaterThan(pair.wireLatencyNanos, 0, "\(label) \(pair.ivorn)")
            }
            XCTAssertEqual(wire.wireAfterApp, 0, label)
            XCTAssertGreaterThanOrEqual(wire.appMinusWire.min, 0, label)

            // The summary JSON carries the wire keys beside the receiver's own.
            let json = try JSONSerialization.jsonObject(
                with: JSONEncoder().encode(ReceiverSummaryWithWire(receiver: received, wire: wire))) as? [String: Any]
            for key in ["received", "latency_s", "wire_latency_s", "app_minus_wire_s", "wire_only", "app_only"] {
                XCTAssertNotNil(json?[key], "\(label) \(key)")
            }

            if let tcpdump {
                let path = try tcpdump.stop()
                defer { unlink(path) }
                let reader = try PcapFileReader(path: path)
                XCTAssertEqual(reader.precision, .nanoseconds)
                var analyzer = VTPWireAnalyzer(port: UInt16(port))
                while let packet = try reader.next() { _ = analyzer.add(packet, linkType: reader.linkType) }
                _ = analyzer.finish()
                let report = analyzer.report()
                XCTAssertEqual(report.counts.events, events, "tcpdump file")
                XCTAssertEqual(report.counts.acks, events, "tcpdump file")
                XCTAssertEqual(report.eventsWithoutResponse, 0, "tcpdump file")
                XCTAssertEqual(report.handshakes, events, "tcpdump file: one connection per event")
                XCTAssertEqual(report.ackRoundTrip.count, events, "tcpdump file")
                // Same packets, same clock: each capture socket stamps at delivery in the kernel, so
                // the two agree to microseconds (measured: 0.7-14 µs apart).
                let live = Dictionary(uniqueKeysWithValues: pairs.map { ($0.ivorn, $0.wireNanos) })
                let differences = analyzer.events.compactMap { e in live[e.ivorn].map { abs($0 - e.wireNanos) } }
                XCTAssertEqual(differences.count, events, "tcpdump saw the same events")
                // The median, not the maximum: a preempted delivery to one socket is noise.
                XCTAssertLessThan(differences.sorted().dropFirst(differences.count / 2).first ?? .max, 1_000_000, "tcpdump and live capture wire times")
            }
        }
    }
}

/// tcpdump writing a nanosecond pcap of one port on lo; stopped with SIGINT (by its own pid).
final class TCPDump {
    let process = Process()
    let path: String
    private let stderr = Pipe()

    init(port: Int) throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/tcpdump") else { throw XCTSkip("tcpdump not installed") }
        path = NSTemporaryDirectory() + "vtpbench-e2e-\(getpid())-\(port).pcap"
        process.executableURL = URL(fileURLWithPath: "/usr/bin/tcpdump")
        process.arguments = [
            "-i", "lo", "-s", "0", "-B", "16384", "--immediate-mode", "--time-stamp-precision=nano", "-U", "-w", path,
            "tcp port \(port)",
        ]
        process.standardError = stderr
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // It prints "listening on lo" once the capture is active.
        let deadline = Date().addingTimeInterval(5)
        var text = ""
        while Date() < deadline && !text.contains("listening on") {
            let data = stderr.fileHandleForReading.availableData
            if data.isEmpty { break }
            text += String(decoding: data, as: UTF8.self)
        }
        guard text.contains("listening on") else {
            process.terminate()
            throw XCTSkip("tcpdump did not start: \(text)")
        }
    }

    func stop() throws -> String {
        usleep(200_000)  // let it write the last packets
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        return path
    }
}
