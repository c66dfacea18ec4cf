import Foundation
import NIOCore
import PacketCapture
import Protocol
import VTPWire
@testable import WireCheck
import XCTest

/// Send times embedded in captured events come off the wire: a capture with sent_ns = Int64.min
/// trapped vtp-capture analyze (wire latency = capture time − send time). Found by fuzzing.
final class WireOverflowTests: XCTestCase {
    func testAnEventWithAnExtremeSendTimeHasNoWireLatency() throws {
        let event = WireEvent(
            connectionID: 1, client: Endpoint(IPAddress("10.0.0.1")!, 1), server: Endpoint(IPAddress("10.0.0.2")!, 2),
            ivorn: "ivo://a/b#1", sequence: 1, sentNanos: .min, wireNanos: 1_700_000_000_000_000_000,
            firstByteNanos: 1_700_000_000_000_000_000, completedNanos: 1_700_000_000_000_000_000)
        XCTAssertNil(event.wireLatencyNanos)
        var ordinary = event
        ordinary.sentNanos = 1_699_999_999_999_000_000
        XCTAssertEqual(ordinary.wireLatencyNanos, 1_000_000)
        XCTAssertEqual(WireEventsCSV.row(event).split(separator: ",", omittingEmptySubsequences: false)[5], "")
    }

    func testTheWireCheckSaturatesInsteadOfTrapping() {
        let pair = WireAppPair(ivorn: "x", sentNanos: .min, wireNanos: 1_000, appNanos: 2_000)
        XCTAssertEqual(pair.wireLatencyNanos, .max)
        XCTAssertEqual(pair.appLatencyNanos, .max)
        XCTAssertEqual(pair.appMinusWireNanos, 1_000)
        XCTAssertEqual(WireAppPair(ivorn: "x", sentNanos: .max, wireNanos: -1, appNanos: 0).wireLatencyNanos, .min)
    }
}
