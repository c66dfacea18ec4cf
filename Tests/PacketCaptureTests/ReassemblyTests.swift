import NIOCore
import PacketCapture
import Protocol
import VTPWire
import TestSupport
import XCTest

final class ReassemblyTests: XCTestCase {
    func testByteStreamRetransmissionOutOfOrderAndWraparound() {
        // ISN just below 2^32: the stream wraps within its first bytes.
        var stream = TCPByteStream()
        let isn: UInt32 = 0xFFFF_FFFA
        stream.anchor(synSequence: isn)
        let data = (0..<30).map { UInt8($0) }
        func seg(_ range: Range<Int>, _ t: Int64) -> [StreamChunk] {
            stream.accept(sequence: isn &+ 1 &+ UInt32(range.lowerBound), payload: Array(data[range]), timestampNanos: t)
        }
        XCTAssertEqual(seg(0..<10, 100).map(\.bytes), [Array(data[0..<10])])
        XCTAssertEqual(seg(20..<30, 200), [])  // ahead of a hole
        XCTAssertEqual(seg(0..<10, 250), [])  // full retransmission
        let filled = seg(5..<20, 300)  // overlaps delivered bytes, fills the hole
        XCTAssertEqual(
            filled,
            [
                StreamChunk(offset: 10, bytes: Array(data[10..<20]), capturedNanos: 300, deliveredNanos: 300),
                StreamChunk(offset: 20, bytes: Array(data[20..<30]), capturedNanos: 200, deliveredNanos: 300),
            ])
        XCTAssertEqual(stream.nextOffset, 30)
        XCTAssertEqual(stream.retransmittedSegments, 2)
        XCTAssertEqual(stream.retransmittedBytes, 15)
        XCTAssertEqual(stream.outOfOrderSegments, 1)
    }

    func testGapIsSkippedWhenTheCaptureLostBytes() {
        var stream = TCPByteStream()
        stream.anchor(synSequence: 0)
        _ = stream.accept(sequence: 1, payload: [1, 2], timestampNanos: 1)
        XCTAssertEqual(stream.accept(sequence: 10, payload: [9], timestampNanos: 2), [])
        XCTAssertEqual(stream.skipGap(nowNanos: 3), [StreamChunk(offset: 9, bytes: [9], capturedNanos: 2, deliveredNanos: 3)])
        XCTAssertEqual(stream.skippedBytes, 7)
        XCTAssertEqual(stream.gaps, 1)
    }

    /// Split, retransmitted and reordered VTP frames in both directions, through pcap files of
    /// several link types and both precisions: exact frames and wire times come back.
    func testVTPFramesAndHandshakeThroughPcapFiles() throws {
        let event1 = vtpFrame("<event one/>")  // 16 bytes
        let event2 = vtpFrame("<event two, a bit longer/>")  // 30 bytes
        let ack1 = vtpFrame("<ack one/>")
        let stream = event1 + event2
        let c = Conversation(clientISN: 0xFFFF_FFF8)  // client sequence numbers wrap inside event1
        let ms: Int64 = 1_000_000
        let base: Int64 = 1_763_000_000_000_000_000
        let segments: [TCPSegment] = [
            c.syn(at: base),
            c.synAck(at: base + 1 * ms + 7),
            c.ack(at: base + 2 * ms + 123_456),
            c.clientData(Array(stream[0..<6]), offset: 0, at: base + 10 * ms),  // event1 split
            c.clientData(Array(stream[20..<46]), offset: 20, at: base + 11 * ms),  // event2's tail first (reordered)
            c.clientData(Array(stream[6..<16]), offset: 6, at: base + 12 * ms + 1),  // event1's last byte
            c.clientData(Array(stream[0..<6]), offset: 0, at: base + 13 * ms),  // retransmission
            c.serverData(Array(ack1[0..<3]), offset: 0, at: base + 14 * ms),
            c.clientData(Array(stream[16..<20]), offset: 16, at: base + 15 * ms + 5),  // fills the hole
            c.serverData(Array(ack1[3...]), offset: 3, at: base + 16 * ms + 999),
            c.fin(fromClient: true, offset: stream.count, at: base + 17 * ms),
            c.fin(fromClient: false, offset: ack1.count, at: base + 18 * ms),
        ]
        let cases: [(UInt32, TimestampPrecision)] = [
            (LinkType.ethernet, .nanoseconds), (LinkType.linuxSLL, .microseconds), (LinkType.linuxSLL2, .nanoseconds),
            (LinkType.raw, .microseconds), (LinkType.null, .nanoseconds), (LinkType.loop, .microseconds),
        ]
        for (linkType, precision) in cases {
            let label = "\(LinkType.name(linkType)) \(precision)"
            let file = pcapFile(segments, linkType: linkType, precision: precision, bigEndian: linkType == LinkType.raw)
            let events = try reassemble(pcap: file)
            func t(_ nanos: Int64) -> Int64 { precision == .nanoseconds ? nanos : nanos / 1000 * 1000 }

            XCTAssertEqual(streamBytes(events, direction: .clientToServer), stream, label)
            XCTAssertEqual(streamBytes(events, direction: .serverToClient), ack1, label)
            let handshakes = events.compactMap { e -> HandshakeTimes? in
                if case .handshakeCompleted(_, let times) = e { return times }
                return nil
            }
            XCTAssertEqual(handshakes.count, 1, label)
            XCTAssertEqual(handshakes.first?.synNanos, t(base), label)
            XCTAssertEqual(handshakes.first?.synToSynAckNanos, t(base + ms + 7) - t(base), label)
            XCTAssertEqual(handshakes.first?.synAckToAckNanos, t(base + 2 * ms + 123_456) - t(base + ms + 7), label)
            XCTAssertEqual(events.filter { if case .closed = $0 { return true } else { return false } }.count, 1, label)

            var framer = VTPWireFramer()
            var frames: [WireFrame] = []
            var problems: [WireStreamProblem] = []
            framer.process(events, frames: &frames, problems: &problems)
            XCTAssertEqual(problems, [], label)
            XCTAssertEqual(
                frames.map { String(buffer: $0.payload) }, ["<event one/>", "<event two, a bit longer/>", "<ack one/>"],
                label)
            XCTAssertEqual(frames.map(\.direction), [.clientToServer, .clientToServer, .serverToClient], label)
            // Event 1: last byte in the segment at 12 ms. The ack: its last byte at 16 ms.
            XCTAssertEqual(frames[0].timestampNanos, t(base + 12 * ms + 1), label)
            XCTAssertEqual(frames[0].timing.firstByteCapturedNanos, t(base + 10 * ms), label)
            XCTAssertEqual(frames[2].timestampNanos, t(base + 16 * ms + 999), label)
            // Event 2's last byte was captured at 11 ms, ahead of the hole filled at 15 ms.
            XCTAssertEqual(frames[1].timestampNanos, t(base + 11 * ms), label)
            XCTAssertEqual(frames[1].timing.completedNanos, t(base + 15 * ms + 5), label)
            XCTAssertEqual(frames[0].key, ConnectionKey(client: c.client, server: c.server), label)
        }
    }

    func testConnectionWithoutHandshakeUsesServerPortAndPortReuseStartsNewConnection() throws {
        let c = Conversation()
        let frame = vtpFrame("<x/>")
        // Capture starts mid-stream with a server → client segment.
        let midStream = [c.serverData(frame, offset: 0, at: 5), c.clientData(frame, offset: 0, at: 6)]
        let events = try reassemble(pcap: pcapFile(midStream, linkType: LinkType.raw, precision: .nanoseconds), serverPorts: [8098])
        guard case .opened(_, let key) = events.first else { return XCTFail("no connection") }
        XCTAssertEqual(key, ConnectionKey(client: c.client, server: c.server))
        XCTAssertEqual(streamBytes(events, direction: .serverToClient), frame)

        // Same 4-tuple twice (port reuse), each a full connection: two connections, two handshakes.
        var second = c
        second.clientISN = 900_000
        second.serverISN = 7
        let twice = [
            c.syn(at: 1), c.synAck(at: 2), c.ack(at: 3), c.clientData(frame, offset: 0, at: 4),
            c.fin(fromClient: true, offset: frame.count, at: 5), c.fin(fromClient: false, offset: 0, at: 6),
            second.syn(at: 10), second.synAck(at: 11), second.ack(at: 12), second.clientData(frame, offset: 0, at: 13),
        ]
        let reused = try reassemble(pcap: pcapFile(twice, linkType: LinkType.ethernet, precision: .nanoseconds))
        let opened = reused.filter { if case .opened = $0 { return true } else { return false } }
        let handshakes = reused.filter { if case .handshakeCompleted = $0 { return true } else { return false } }
        XCTAssertEqual(opened.count, 2)
        XCTAssertEqual(handshakes.count, 2)
        XCTAssertEqual(streamBytes(reused, direction: .clientToServer), frame + frame)
    }

    func testFramingErrorAndCaptureGapBreakOnlyThatDirection() throws {
        let c = Conversation()
        let garbage: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3]
        let ok = vtpFrame("<fine/>")
        let segments = [
            c.syn(at: 1), c.synAck(at: 2), c.ack(at: 3),
            c.clientData(garbage, offset: 0, at: 4),
            c.serverData(ok, offset: 0, at: 5),
            c.serverData(ok, offset: ok.count + 10, at: 6),  // the capture lost 10 bytes before it
        ]
        let events = try reassemble(pcap: pcapFile(segments, linkType: LinkType.ethernet, precision: .nanoseconds))
        var framer = VTPWireFramer()
        var frames: [WireFrame] = []
        var problems: [WireStreamProblem] = []
        framer.process(events, frames: &frames, problems: &problems)
        // The frame after the hole is recovered (framing resumes at the next header).
        XCTAssertEqual(frames.map { String(buffer: $0.payload) }, ["<fine/>", "<fine/>"])
        XCTAssertEqual(frames.map(\.timestampNanos), [5, 6])
        XCTAssertEqual(problems.count, 2)
        XCTAssertTrue(problems.contains(.captureGap(connectionID: 1, direction: .serverToClient, bytes: 10)))
        XCTAssertTrue(problems.contains { if case .framing(1, .clientToServer, _) = $0 { return true } else { return false } })
    }
}

final class GapResynchronisationTests: XCTestCase {
    /// The capture loses a segment in the middle of frame B: A and C come out, C with its times.
    func testFramingResumesAtTheNextHeaderAfterAHole() throws {
        let c = Conversation()
        let a = vtpFrame("<a>first</a>")
        let b = vtpFrame("<b>" + String(repeating: "y", count: 300) + "</b>")
        let cc = vtpFrame("<c>third</c>")
        let stream = a + b + cc
        let lostStart = a.count + 20
        let lostEnd = a.count + 120
        let segments = [
            c.syn(at: 1), c.synAck(at: 2), c.ack(at: 3),
            c.clientData(Array(stream[0..<lostStart]), offset: 0, at: 10),
            // stream[lostStart..<lostEnd] never captured
            c.clientData(Array(stream[lostEnd..<(a.count + b.count + 6)]), offset: lostEnd, at: 20),
            c.clientData(Array(stream[(a.count + b.count + 6)...]), offset: a.count + b.count + 6, at: 30),
        ]
        let events = try reassemble(pcap: pcapFile(segments, linkType: LinkType.raw, precision: .nanoseconds))
        var framer = VTPWireFramer()
        var frames: [WireFrame] = []
        var problems: [WireStreamProblem] = []
        framer.process(events, frames: &frames, problems: &problems)
        XCTAssertEqual(frames.map { String(buffer: $0.payload) }, ["<a>first</a>", "<c>third</c>"])
        XCTAssertEqual(frames.map(\.timestampNanos), [10, 30])
        XCTAssertEqual(frames.last?.timing.firstByteCapturedNanos, 20)
        XCTAssertEqual(frames.last?.timing.startOffset, UInt64(a.count + b.count))
        XCTAssertEqual(problems, [.captureGap(connectionID: 1, direction: .clientToServer, bytes: 100)])
    }
}

final class ReassemblerRetentionTests: XCTestCase {
    func testFinishedAndIdleConnectionsAreForgottenAndStrayPacketsOpenNothing() {
        var reassembler = TCPReassembler()
        reassembler.idleRetentionNanos = 60_000_000_000
        let second: Int64 = 1_000_000_000
        let done = Conversation(client: Endpoint(IPAddress("10.0.0.1")!, 1111))
        let idle = Conversation(client: Endpoint(IPAddress("10.0.0.1")!, 2222))
        for segment in [
            done.syn(at: 0), done.synAck(at: 1), done.ack(at: 2), done.fin(fromClient: true, offset: 0, at: 3),
            done.fin(fromClient: false, offset: 0, at: 4), idle.syn(at: 5), idle.synAck(at: 6), idle.ack(at: 7),
        ] {
            _ = reassembler.process(segment)
        }
        XCTAssertEqual(reassembler.connections.count, 2)
        // 10 s later the finished connection is gone; its stray final ACK opens nothing.
        var late = done.ack(at: 10 * second)
        late.sequence &+= 1
        XCTAssertEqual(reassembler.process(late), [])
        XCTAssertEqual(reassembler.connections.count, 1)
        // After the idle limit, the silent connection is reported closed and forgotten.
        let events = reassembler.process(done.syn(at: 100 * second))
        XCTAssertTrue(events.contains(.closed(connectionID: 2)), "\(events)")
        XCTAssertEqual(reassembler.connections.count, 1)  // only the new SYN's connection
        XCTAssertEqual(reassembler.forgottenConnections, 2)
        XCTAssertEqual(reassembler.totals.connections, 3)
    }
}

final class HoleAgeTests: XCTestCase {
    func testAnOldHoleIsSkippedWhenALimitIsSet() {
        var stream = TCPByteStream()
        stream.maximumHoleAgeNanos = 1000
        stream.anchor(synSequence: 0)
        XCTAssertEqual(stream.accept(sequence: 1, payload: [1], timestampNanos: 0).count, 1)
        XCTAssertEqual(stream.accept(sequence: 5, payload: [5], timestampNanos: 100), [])  // hole 2..4
        XCTAssertEqual(stream.accept(sequence: 6, payload: [6], timestampNanos: 900), [])  // still young
        let chunks = stream.accept(sequence: 7, payload: [7], timestampNanos: 1200)  // hole older than 1 µs
        XCTAssertEqual(chunks.map(\.bytes), [[5], [6], [7]])
        XCTAssertEqual(chunks.map(\.capturedNanos), [100, 900, 1200])
        XCTAssertEqual(stream.skippedBytes, 3)
        XCTAssertFalse(stream.hasHole)
    }
}
