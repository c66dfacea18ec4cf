import NIOCore
import PGWire
import Protocol
import XCTest

@testable import ProxyCore

final class InspectorTests: XCTestCase {
    private let startup = PGFrontendMessage.startup(
        protocolVersion: PGStartupCode.protocol3, parameters: [PGStartupParameter(name: "user", value: "u")])

    private func events(_ inspection: Inspection) -> [String] {
        inspection.records.map { record in
            let json = record.json
            let range = json.range(of: "\"event\":\"")!
            return String(json[range.upperBound...].prefix { $0 != "\"" })
        }
    }

    func testSSLRequestAnsweredNAndStartupHeldUntilComplete() {
        var inspector = PGClientInspector()
        let ssl = inspector.inspect(PGEncoding.bytes(.sslRequest), connection: 1)
        XCTAssertEqual(ssl.reply, ByteBuffer(string: "N"))
        XCTAssertNil(ssl.forward, "the SSLRequest never reaches the server")
        XCTAssertNil(ssl.failure)

        var bytes = PGEncoding.bytes(startup)
        PGEncoding.write(.query("SELECT 1"), into: &bytes)
        PGEncoding.write(.query("SELECT 2"), into: &bytes)
        let whole = bytes
        let head = inspector.inspect(bytes.readSlice(length: 10)!, connection: 1)
        XCTAssertNil(head.forward, "an incomplete startup packet is held")
        // The rest, split in the middle of the second query.
        let middle = inspector.inspect(bytes.readSlice(length: bytes.readableBytes - 4)!, connection: 1)
        let tail = inspector.inspect(bytes, connection: 1)
        var forwarded = middle.forward!
        var rest = tail.forward!
        forwarded.writeBuffer(&rest)
        XCTAssertEqual(forwarded, whole, "startup and queries forwarded byte for byte")
        XCTAssertEqual(events(middle), ["startup", "query"])
        XCTAssertEqual(events(tail), ["query"])
        XCTAssertTrue(tail.records[0].json.contains("\"sql\":\"SELECT 2\""))
    }

    func testPlaintextPipelinedBehindSSLRequestIsRefused() {
        var inspector = PGClientInspector()
        var bytes = PGEncoding.bytes(.sslRequest)
        PGEncoding.write(startup, into: &bytes)
        let result = inspector.inspect(bytes, connection: 1)
        XCTAssertNotNil(result.failure)
        XCTAssertNil(result.forward)
        XCTAssertNil(result.reply, "no 'N' for a client that did not wait for it")
    }

    func testCancelRequestForwardedAsIs() {
        var inspector = PGClientInspector()
        let cancel = PGEncoding.bytes(.cancelRequest(processID: 77, secretKey: 5))
        let result = inspector.inspect(cancel, connection: 1)
        XCTAssertEqual(result.forward, cancel)
        XCTAssertEqual(events(result), ["cancel_request"])
    }

    func testOversizedStartupRejected() {
        var inspector = PGClientInspector(maximumStartupLength: 100)
        let big = PGEncoding.bytes(
            .startup(
                protocolVersion: PGStartupCode.protocol3,
                parameters: [PGStartupParameter(name: "options", value: String(repeating: "x", count: 200))]))
        let result = inspector.inspect(big.getSlice(at: 0, length: 8)!, connection: 1)
        XCTAssertNotNil(result.failure, "refused on the length alone")
    }

    func testExtendedProtocolPackedInOneRead() {
        var inspector = PGClientInspector()
        _ = inspector.inspect(PGEncoding.bytes(startup), connection: 3)
        var bytes = ByteBuffer()
        PGEncoding.write(.parse(statement: "s", query: "SELECT $1::int", parameterTypes: [23]), into: &bytes)
        PGEncoding.write(
            .bind(PGBind(portal: "", statement: "s", parameterFormats: [], parameters: [ByteBuffer(string: "5")], resultFormats: [])),
            into: &bytes)
        PGEncoding.write(.execute(portal: "", maxRows: 0), into: &bytes)
        PGEncoding.write(.sync, into: &bytes)
        let result = inspector.inspect(bytes, connection: 3)
        XCTAssertEqual(events(result), ["parse", "bind", "execute"])
        XCTAssertTrue(result.records[1].json.contains("\"params\":[\"5\"]"), result.records[1].json)
        XCTAssertTrue(result.records[0].json.contains("\"conn\":3"))
    }

    func testBindWith40000ParametersIsForwardedAndLogged() {
        // Built by hand (counts are UInt16 on the wire): 40,000 text parameters "7".
        var body = ByteBuffer(string: "\0s\0")
        body.writeInteger(UInt16(0), endianness: .big)
        body.writeInteger(UInt16(40_000), endianness: .big)
        for _ in 0..<40_000 {
            body.writeInteger(Int32(1), endianness: .big)
            body.writeString("7")
        }
        body.writeInteger(UInt16(0), endianness: .big)
        var bytes = ByteBuffer()
        bytes.writeInteger(UInt8(ascii: "B"))
        bytes.writeInteger(Int32(4 + body.readableBytes), endianness: .big)
        bytes.writeBuffer(&body)
        var inspector = PGClientInspector()
        _ = inspector.inspect(PGEncoding.bytes(startup), connection: 4)
        let result = inspector.inspect(bytes, connection: 4)
        XCTAssertNil(result.failure)
        XCTAssertEqual(result.forward, bytes, "forwarded as is")
        XCTAssertEqual(events(result), ["bind"])
        XCTAssertEqual(result.records.first?.json.components(separatedBy: "\"7\"").count, 40_001, "every parameter logged")
    }

    func testMalformedTypedMessageFails() {
        var inspector = PGClientInspector()
        _ = inspector.inspect(PGEncoding.bytes(startup), connection: 1)
        let result = inspector.inspect(ByteBuffer(bytes: [UInt8(ascii: "Q"), 0, 0, 0, 2]), connection: 1)
        XCTAssertNotNil(result.failure)
    }

    func testServerErrorsLogged() {
        var inspector = PGServerInspector()
        var bytes = PGEncoding.bytes(.readyForQuery(.idle))
        PGEncoding.write(
            .errorResponse(PGErrorFields(fields: [UInt8(ascii: "V"): "ERROR", UInt8(ascii: "C"): "42P01", UInt8(ascii: "M"): "no \"t\""])),
            into: &bytes)
        let first = inspector.inspect(bytes.readSlice(length: 9)!, connection: 1)
        XCTAssertEqual(events(first), [])
        let second = inspector.inspect(bytes, connection: 1)
        XCTAssertEqual(events(second), ["error"])
        XCTAssertTrue(second.records[0].json.contains(#""code":"42P01","message":"no \"t\"""#), second.records[0].json)
    }

    func testVTPEventsAndAcksSplitAndPacked() throws {
        let builder = TestEventBuilder(localIVO: "ivo://test/proxy", eventSize: 600)
        let sent = WallClock.nowNanos() - 2_000_000
        var stream = VTPFraming.frame(builder.document(sequence: 41, sentNanos: sent))
        var second = VTPFraming.frame(builder.document(sequence: 42, sentNanos: sent))
        stream.writeBuffer(&second)
        var inspector = VTPInspector(direction: .upstream)
        var records: [LogRecord] = []
        while stream.readableBytes > 0 {
            let result = inspector.inspect(stream.readSlice(length: min(97, stream.readableBytes))!, connection: 9)
            XCTAssertNil(result.failure)
            records += result.records
        }
        XCTAssertEqual(records.count, 2)
        XCTAssertTrue(records[0].json.contains("\"seq\":41"))
        XCTAssertTrue(records[1].json.contains("\"ivorn\":\"\(builder.ivorn(sequence: 42))\""))
        let latency = try XCTUnwrap(records[0].json.range(of: "\"latency_s\":"))
        let value = Double(records[0].json[latency.upperBound...].prefix { $0 != "," })!
        XCTAssertGreaterThan(value, 0.0015)
        XCTAssertLessThan(value, 1)

        var down = VTPInspector(direction: .downstream)
        let ack = TransportMessage.ack(eventIVORN: builder.ivorn(sequence: 41), localIVO: "ivo://test/receiver")
        let result = down.inspect(ack.framed(), connection: 9)
        XCTAssertEqual(events(result), ["ack"])
    }

    func testVTPOversizedFrameFails() {
        var inspector = VTPInspector(direction: .upstream)
        let result = inspector.inspect(ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0x3C]), connection: 1)
        XCTAssertNotNil(result.failure)
    }
}
