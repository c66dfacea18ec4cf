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

/// The capture thread on a live interface (root).
final class LiveCaptureThreadTests: XCTestCase {
    func testTheThreadDecodesCountsAndDrainsBeforeItStops() throws {
        guard geteuid() == 0 else { throw XCTSkip("live capture needs root or CAP_NET_RAW") }
        let listener = try TCPListener()
        let thread = CaptureThread<Collector>(
            capture: try LiveCapture(interface: "lo", filter: "tcp"), threadName: "test-capture")
        try thread.start(consumer: Collector(port: UInt16(listener.port))) { capture throws(LiveCaptureError) in
            try capture.setFilter("tcp port \(listener.port)")
        }
        let client = try TCPClient(port: listener.port)
        let server = try listener.accept()
        for _ in 0..<20 { try client.send([UInt8](repeating: 1, count: 100)) }
        _ = try server.receive(count: 2_000)
        client.close()
        server.close()
        // No sleep: the stop drains what the kernel holds.
        let outcome = thread.stop()
        let consumer = try XCTUnwrap(outcome.consumer)
        XCTAssertNil(outcome.failure)
        XCTAssertTrue(consumer.finished)
        XCTAssertGreaterThan(consumer.polls, 0)
        XCTAssertEqual(consumer.payloadBytes, 2_000, "every byte sent, seen once by the consumer")
        XCTAssertEqual(consumer.segments, outcome.decode.packets - outcome.decode.notTCP - outcome.decode.undecodable)
        XCTAssertGreaterThan(outcome.decode.bytes, 2_000)
        XCTAssertEqual(outcome.decode.captureDropped, 0)
        XCTAssertEqual(outcome.decode.reassemblyGaps, 0)
        XCTAssertNotNil(outcome.statistics)
        XCTAssertEqual(thread.stop().decode, outcome.decode, "a second stop returns the same outcome")
    }

    func testStopWithoutStartClosesTheCapture() throws {
        guard geteuid() == 0 else { throw XCTSkip("live capture needs root or CAP_NET_RAW") }
        let thread = CaptureThread<Collector>(capture: try LiveCapture(interface: "lo", filter: "tcp"), threadName: "t")
        let outcome = thread.stop()
        XCTAssertNil(outcome.consumer)
        XCTAssertEqual(outcome.decode.packets, 0)
        try thread.start(consumer: Collector())  // after stop: does nothing
        XCTAssertNil(thread.stop().consumer)
    }
}
