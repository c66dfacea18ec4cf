import Foundation
import PacketCapture
import XCTest

/// Captures from anywhere: however many connections or out-of-order bytes a file names, the
/// reassembly's memory stays bounded and what it skips is counted.
final class HostileCaptureTests: XCTestCase {
    let server = Endpoint(IPAddress("10.0.0.2")!, 8098)

    func syn(_ port: UInt16, at t: Int64 = 0) -> TCPSegment {
        TCPSegment(timestampNanos: t, source: Endpoint(IPAddress("10.0.0.1")!, port), destination: server, sequence: 1, flags: .syn)
    }

    func testConnectionsPastTheLimitAreSkippedAndCounted() {
        var reassembler = TCPReassembler(serverPorts: [8098])
        reassembler.maximumConnections = 4
        // All at the same capture time: no idle pruning can make room.
        for port in 1...10 { _ = reassembler.process(syn(UInt16(port))) }
        XCTAssertEqual(reassembler.connections.count, 4)
        XCTAssertEqual(reassembler.totals.connections, 4)
        XCTAssertEqual(reassembler.totals.connectionsSkipped, 6)
        var counters = DecodeCounters()
        counters.update(from: reassembler.totals)
        XCTAssertEqual(counters.connectionsSkipped, 6)
        XCTAssertTrue(counters.line.hasSuffix(", 6 segments of connections past the limit skipped"), counters.line)
    }

    func testClosedConnectionsMakeRoomBeforeAnyIsSkipped() {
        var reassembler = TCPReassembler(serverPorts: [8098])
        reassembler.maximumConnections = 2
        let client = Endpoint(IPAddress("10.0.0.1")!, 1)
        _ = reassembler.process(syn(1))
        _ = reassembler.process(TCPSegment(timestampNanos: 0, source: client, destination: server, sequence: 2, flags: [.rst]))
        _ = reassembler.process(syn(2))
        XCTAssertEqual(reassembler.connections.count, 2, "the reset one is kept for its retention while there is room")
        _ = reassembler.process(syn(3))
        XCTAssertEqual(reassembler.connections.count, 2, "the reset one made room")
        XCTAssertEqual(reassembler.totals.connectionsSkipped, 0)
        XCTAssertEqual(reassembler.totals.connections, 3)
    }

    func testBytesHeldAheadOfHolesAreBoundedOverAllStreams() {
        var reassembler = TCPReassembler(serverPorts: [8098])
        reassembler.maximumBufferedBytes = 10_000
        var gaps = 0
        for port in 1...20 {
            let client = Endpoint(IPAddress("10.0.0.1")!, UInt16(port))
            _ = reassembler.process(syn(UInt16(port)))
            // 1 KB ahead of a 1-byte hole, on every connection.
            let events = reassembler.process(
                TCPSegment(
                    timestampNanos: 0, source: client, destination: server, sequence: 3,
                    payload: [UInt8](repeating: 0x41, count: 1000)))
            gaps += events.filter { if case .gap = $0 { return true } else { return false } }.count
            XCTAssertLessThanOrEqual(reassembler.bufferedBytes, 10_000)
        }
        XCTAssertGreaterThan(gaps, 0, "past the budget, holes are given up")
        XCTAssertEqual(reassembler.totals.gaps, gaps)
        _ = reassembler.flush()
        XCTAssertEqual(reassembler.bufferedBytes, 0)
    }

    func testAMillionTinyFlowsStayBounded() {
        var reassembler = TCPReassembler(serverPorts: [8098])
        var address: UInt32 = 0x0A00_0000
        for i in 0..<1_000_000 {
            if i % 60_000 == 0 { address += 1 }
            let client = Endpoint(IPAddress(ipv4: address), UInt16(1024 + i % 60_000))
            _ = reassembler.process(
                TCPSegment(timestampNanos: Int64(i), source: client, destination: server, sequence: 7, flags: .syn))
        }
        XCTAssertEqual(reassembler.connections.count, reassembler.maximumConnections)
        XCTAssertEqual(reassembler.totals.connectionsSkipped, 1_000_000 - reassembler.maximumConnections)
    }
}
