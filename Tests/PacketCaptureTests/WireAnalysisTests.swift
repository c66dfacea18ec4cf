import Foundation
import NIOCore
import PacketCapture
import Protocol
import VTPWire
import WireCheck
import TestSupport
import XCTest

final class WireAnalysisTests: XCTestCase {
    let builder = TestEventBuilder(localIVO: "ivo://vtpbench.test/sender", runID: "run1", eventSize: 600)
    let ms: Int64 = 1_000_000
    let base: Int64 = 1_763_000_000_000_000_000

    /// Two connections (one per event, the per-event pattern) plus a persistent one with two
    /// events; split frames and a retransmission; exact latencies and ack round trips.
    func testAnalyzerMeasuresWireLatencyAckRoundTripAndHandshakes() throws {
        var segments: [TCPSegment] = []
        var expected: [(seq: UInt64, wire: Int64, ackRTT: Int64)] = []
        for i in 0..<2 {
            let c = Conversation(client: Endpoint(IPAddress("::1")!, UInt16(50_000 + i)), server: Endpoint(IPAddress("::1")!, 8098))
            let t0 = base + Int64(i) * 100 * ms
            let sent = t0 - 3 * ms  // sender stamped the event 3 ms before connecting
            let event = vtpFrame(builder.document(sequence: UInt64(i), sentNanos: sent))
            let ack = vtpFrame(TransportMessage.ack(eventIVORN: builder.ivorn(sequence: UInt64(i)), localIVO: "ivo://r/x").xml)
            let half = event.count / 2
            segments += [
                c.syn(at: t0), c.synAck(at: t0 + 40_000), c.ack(at: t0 + 90_000),
                c.clientData(Array(event[..<half]), offset: 0, at: t0 + ms),
                c.clientData(Array(event[half...]), offset: half, at: t0 + 2 * ms),
                c.clientData(Array(event[half...]), offset: half, at: t0 + 2 * ms + 500),  // retransmission
                c.serverData(ack, offset: 0, at: t0 + 2 * ms + 250_000),
                c.fin(fromClient: true, offset: event.count, at: t0 + 3 * ms),
                c.fin(fromClient: false, offset: ack.count, at: t0 + 3 * ms + 1),
            ]
            expected.append((UInt64(i), t0 + 2 * ms - sent, 250_000))
        }
        let p = Conversation(client: Endpoint(IPAddress("127.0.0.1")!, 40_100), server: Endpoint(IPAddress("127.0.0.1")!, 8098))
        var offset = 0
        var ackOffset = 0
        let t1 = base + 500 * ms
        segments += [p.syn(at: t1), p.synAck(at: t1 + 1000), p.ack(at: t1 + 2000)]
        for seq in UInt64(10)..<12 {
            let t = t1 + Int64(seq) * ms
            let event = vtpFrame(builder.document(sequence: seq, sentNanos: t - 777))
            let ack = vtpFrame(TransportMessage.ack(eventIVORN: builder.ivorn(sequence: seq), localIVO: nil).xml)
            segments += [p.clientData(event, offset: offset, at: t), p.serverData(ack, offset: ackOffset, at: t + 123_456)]
            offset += event.count
            ackOffset += ack.count
            expected.append((seq, 777, 123_456))
        }
        // Unrelated traffic on another port is ignored with --port.
        let other = Conversation(server: Endpoint(IPAddress("10.0.0.2")!, 5432))
        segments += [other.syn(at: base), other.clientData([1, 2, 3, 4], offset: 0, at: base + 1)]

        let file = pcapFile(segments, linkType: LinkType.linuxSLL2, precision: .nanoseconds)
        let reader = try PcapFileReader(bytes: file)
        var analyzer = VTPWireAnalyzer(port: 8098)
        while let packet = try reader.next() { _ = analyzer.add(packet, linkType: reader.linkType) }
        _ = analyzer.finish()

        XCTAssertEqual(analyzer.events.map(\.sequence), expected.map { Optional($0.seq) })
        XCTAssertEqual(analyzer.events.map(\.wireLatencyNanos), expected.map { Optional($0.wire) })
        XCTAssertEqual(analyzer.events.map(\.ackRoundTripNanos), expected.map { Optional($0.ackRTT) })
        let report = analyzer.report()
        XCTAssertEqual(report.counts.events, 4)
        XCTAssertEqual(report.counts.acks, 4)
        XCTAssertEqual(report.counts.tcpSegments, segments.count - 2)
        XCTAssertEqual(report.connections, 3)
        XCTAssertEqual(report.handshakes, 3)
        XCTAssertEqual(report.retransmittedSegments, 2)
        XCTAssertEqual(report.eventsWithoutResponse, 0)
        XCTAssertEqual(report.wireLatency.count, 4)
        XCTAssertEqual(report.wireLatency.min, 777e-9, accuracy: 1e-12)
        XCTAssertEqual(report.wireLatency.max, 5e-3, accuracy: 1e-12)
        XCTAssertEqual(report.handshakeSynToSynAck.min, 1e-6, accuracy: 1e-12)
        XCTAssertEqual(report.handshakeSynToSynAck.max, 40e-6, accuracy: 1e-12)
        XCTAssertEqual(report.handshakeSynAckToAck.max, 50e-6, accuracy: 1e-12)

        // The JSON keys the CLI prints.
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(report)) as? [String: Any]
        for key in ["wire_latency_s", "ack_rtt_s", "retransmitted_segments", "handshake_syn_to_synack_s", "counts"] {
            XCTAssertNotNil(json?[key], key)
        }
    }

    func testCorrelatorPairsEitherOrderAndCountsTheRest() {
        var c = WireAppCorrelator(keepsPairs: true)
        func wire(_ ivorn: String, _ t: Int64) -> WireEvent {
            WireEvent(
                connectionID: 1, client: Endpoint(IPAddress(ipv4: 1), 1), server: Endpoint(IPAddress(ipv4: 2), 2),
                ivorn: ivorn, sequence: nil, sentNanos: 100, wireNanos: t, firstByteNanos: t, completedNanos: t)
        }
        c.recordWire(wire("a", 150))
        c.recordApp(ivorn: "a", sentNanos: 100, appNanos: 170)
        c.recordApp(ivorn: "b", sentNanos: 100, appNanos: 400)
        c.recordWire(wire("b", 300))
        c.recordWire(wire("wire-only", 10))
        c.recordApp(ivorn: "app-only", sentNanos: 1, appNanos: 2)
        c.recordApp(ivorn: "warm", sentNanos: 0, appNanos: 10, inWarmup: true)
        c.recordWire(wire("warm", 5))
        XCTAssertEqual(c.matched, 3)
        XCTAssertEqual(c.wireOnly, 1)
        XCTAssertEqual(c.appOnly, 1)
        XCTAssertEqual(c.wireLatency.count, 2)  // the warm-up pair is not in the statistics
        XCTAssertEqual(c.wireLatency.summary.min, 50e-9, accuracy: 1e-15)
        XCTAssertEqual(c.appMinusWire.summary.max, 100e-9, accuracy: 1e-15)
        XCTAssertEqual(c.pairs.map(\.appMinusWireNanos), [20, 100, 5])
        XCTAssertEqual(c.wireAfterApp, 0)
        XCTAssertEqual(
            WirePairsCSV.text(Array(c.pairs.prefix(1))),
            WirePairsCSV.header + "\na,100,150,170,0.000000050,0.000000070,0.000000020\n")
    }
}
