import NIOCore
import Protocol
import XCTest

/// QuickXML must give exactly SafeXMLParser's tree for what it accepts, and accept nothing
/// libxml2 refuses; checked on real messages and on thousands of mutations of them.
final class QuickXMLTests: XCTestCase {
    private func quick(_ text: String) -> XMLElement? {
        Array(text.utf8).withUnsafeBytes { QuickXML.parse($0) }
    }

    private var samples: [String] {
        let ack = TransportMessage.ack(
            eventIVORN: "ivo://vtpbench.test/sender#run-7", localIVO: "ivo://vtpbench.test/receiver", nowNanos: 1_764_000_000_000_000_000,
            params: [.init(name: TransportMessage.receivedNanosParam, value: "17"), .init(name: TransportMessage.repliedNanosParam, value: "18")])
        let nak = TransportMessage.nak(eventIVORN: "ivo://x.test/s#1", localIVO: "ivo://x.test/r", reason: "Event rejected: schema says no")
        // As Comet 3.1.0 writes an ack (lxml, single-quoted declaration, namespaced root).
        let comet = """
            <?xml version='1.0' encoding='UTF-8'?>
            <trn:Transport xmlns:trn="http://www.telescope-networks.org/xml/Transport/v1.1" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="1.0" role="ack" xsi:schemaLocation="http://telescope-networks.org/schema/Transport/v1.1 http://telescope-networks.org/schema/Transport-v1.1.xsd">
              <Origin>ivo://vtpbench.test/sender#run-8</Origin>
              <Response>ivo://bench.test/broker</Response>
              <TimeStamp>2026-11-24T02:22:29Z</TimeStamp>
            </trn:Transport>

            """
        let event = TestEventBuilder(localIVO: "ivo://vtpbench.test/sender", runID: "r", eventSize: 700)
            .document(sequence: 3, sentNanos: 1_764_000_000_123_456_789)
        let defaultNamespace = "<Transport xmlns='urn:t' role='iamalive' version='1.0'><Origin>o</Origin><TimeStamp>2026-01-01T00:00:00Z</TimeStamp><Meta><Param name='a' value=\"1'\"/></Meta></Transport>"
        return [ack.xml, nak.xml, TransportMessage.iamalive(localIVO: "ivo://x.test/r").xml, comet, event, defaultNamespace]
    }

    func testRealMessagesReadExactlyAsLibxml2ReadsThem() throws {
        for sample in samples {
            let fast = try XCTUnwrap(quick(sample), "in the subset: \(sample)")
            XCTAssertEqual(fast, try SafeXMLParser.parse(sample), sample)
        }
        let ack = samples[0]
        var buffer = ByteBufferAllocator().buffer(capacity: 600)
        buffer.writeString(ack)
        guard case .transport(let message)? = try buffer.withUnsafeReadableBytes({ QuickXML.parse($0) }).map(VTPMessage.parse)
        else { return XCTFail("not a transport message") }
        XCTAssertEqual(message.role, .ack)
        XCTAssertEqual(message.origin, "ivo://vtpbench.test/sender#run-7")
        XCTAssertEqual(message.integerParam(TransportMessage.repliedNanosParam), 18)
        // The receiver's path: a plain event and a malformed one read as by the full parser.
        for payload in [samples[4], "<VOEvent ivorn='x'><Who></VOEvent>"] {
            var frame = ByteBufferAllocator().buffer(capacity: 1100)
            frame.writeString(payload)
            func outcome(_ body: () throws -> VTPMessage) -> String {
                do { return "\(try body())" } catch { return "error: \(error)" }
            }
            XCTAssertEqual(outcome { try VTPMessage.parsePlainFirst(frame) }, outcome { try VTPMessage.parse(frame) }, payload)
        }
    }

    func testWhatIsOutsideTheSubsetIsLeftToLibxml2() {
        let outside = [
            "<a>&amp;</a>", "<a><!-- c --></a>", "<a><![CDATA[x]]></a>", "<!DOCTYPE a><a/>", "<a><?pi x?></a>",
            "<?xml version='1.1'?><a/>", " <?xml version='1.0'?><a/>", "<a b='1\t2'/>", "<a>\r\n</a>", "<a>é</a>",
            "<p:a/>", "<a xmlns:p=''/>", "<a x='1' x='2'/>", "<a xmlns:p='u' xmlns:q='u' p:x='1' q:x='2'/>",
            "<a>]]></a>", "<a x='1'y='2'/>", "<a></b>", "<a>", "<a/><b/>", "<a/>x", "",
            String(repeating: "<a>", count: 20) + String(repeating: "</a>", count: 20),
            "<a " + (0..<17).map { "xmlns:p\($0)='u'" }.joined(separator: " ") + "/>",
        ]
        for text in outside { XCTAssertNil(quick(text), text) }
    }

    func testMutationsAreEitherRefusedOrReadExactlyAsLibxml2ReadsThem() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("<>/=\"' :ax!?&]\n\t-\r".utf8) + [0x80, 0x00]
        var accepted = 0
        var checked = 0
        for sample in samples {
            for bytes in Mutations.of(Array(sample.utf8), count: 1500, alphabet: alphabet, using: &generator) {
                checked += 1
                guard let fast = bytes.withUnsafeBytes({ QuickXML.parse($0) }) else { continue }
                accepted += 1
                let slow = try? SafeXMLParser.parse(bytes)
                XCTAssertEqual(fast, slow, "differs from libxml2: \(String(decoding: bytes, as: UTF8.self))")
            }
        }
        // Most one-to-three-byte changes land in text or values and stay readable.
        XCTAssertGreaterThan(accepted, checked / 10, "\(accepted) of \(checked)")
    }
}
