import NIOCore
import Protocol
import XCTest

@testable import ProxyCore

/// vtp-proxy --protocol vtp logs each event's latency from its embedded send time, which comes
/// off the wire: sent_ns = Int64.min trapped in `now - sent` and took the proxy down.
final class InspectorOverflowTests: XCTestCase {
    func testAnEventWithAnExtremeSendTimeIsLoggedWithoutALatency() throws {
        let event = """
            <?xml version="1.0"?><voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" version="2.0" \
            role="test" ivorn="ivo://a.test/b#1"><What><Param name="sent_ns" value="-9223372036854775808"/>\
            <Param name="seq" value="1"/></What></voe:VOEvent>
            """
        var inspector = VTPInspector(direction: .upstream)
        let inspection = inspector.inspect(VTPFraming.frame(event), connection: 1)
        XCTAssertNil(inspection.failure)
        XCTAssertNotNil(inspection.forward, "the event is passed on")
        let line = try XCTUnwrap(inspection.records.first?.line)
        XCTAssertTrue(line.contains("\"event\":\"voevent\""), line)
        XCTAssertFalse(line.contains("latency_s"), line)
        XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], line)
    }
}
