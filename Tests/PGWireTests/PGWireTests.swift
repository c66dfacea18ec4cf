import NIOCore
import NIOEmbedded
import NIOTestUtils
import XCTest

@testable import PGWire

final class PGWireTests: XCTestCase {
    private func buffer(_ strings: String...) -> ByteBuffer { ByteBuffer(string: strings.joined()) }

    private let startup = PGFrontendMessage.startup(
        protocolVersion: PGStartupCode.protocol3,
        parameters: [
            PGStartupParameter(name: "user", value: "postgres"),
            PGStartupParameter(name: "database", value: "bench"),
        ])

    private var extendedSession: [PGFrontendMessage] {
        [
            startup,
            .query("SELECT 1; SELECT 'ü'"),
            .parse(statement: "s1", query: "SELECT abalance FROM pgbench_accounts WHERE aid = $1", parameterTypes: [23]),
            .bind(
                PGBind(
                    portal: "", statement: "s1", parameterFormats: [0], parameters: [ByteBuffer(string: "42"), nil],
                    resultFormats: [1])),
            .describe(.portal, name: ""),
            .execute(portal: "", maxRows: 0),
            .close(.statement, name: "s1"),
            .flush,
            .sync,
            .copyData(ByteBuffer(string: "1\t2\n")),
            .copyDone,
            .copyFail("nope"),
            .authenticationResponse(ByteBuffer(string: "secret\0")),
            .terminate,
        ]
    }

    private var backendSession: [PGBackendMessage] {
        [
            .authentication(.sasl(mechanisms: ["SCRAM-SHA-256"])),
            .authentication(.saslContinue(ByteBuffer(string: "r=abc"))),
            .authentication(.md5Password(salt: 0xDEAD_BEEF)),
            .authentication(.ok),
            .parameterStatus(name: "server_version", value: "15.8"),
            .backendKeyData(processID: 1234, secretKey: -99),
            .readyForQuery(.idle),
            .rowDescription([
                PGFieldDescription(
                    name: "abalance", tableOID: 16_400, columnAttribute: 3, typeOID: 23, typeSize: 4, typeModifier: -1,
                    format: 0)
            ]),
            .dataRow([ByteBuffer(string: "7"), nil]),
            .commandComplete(tag: "SELECT 1"),
            .errorResponse(
                PGErrorFields(fields: [
                    UInt8(ascii: "S"): "ERROR", UInt8(ascii: "V"): "ERROR", UInt8(ascii: "C"): "42P01",
                    UInt8(ascii: "M"): "relation \"nope\" does not exist", UInt8(ascii: "P"): "15",
                ])),
            .noticeResponse(PGErrorFields(fields: [UInt8(ascii: "S"): "NOTICE", UInt8(ascii: "M"): "hi"])),
            .parseComplete, .bindComplete, .closeComplete, .noData, .portalSuspended, .emptyQueryResponse,
            .parameterDescription([23, 25]),
            .notification(processID: 7, channel: "ch", payload: "pl"),
            .copyData(ByteBuffer(string: "x")), .copyDone,
            .negotiateProtocolVersion(newestMinor: 0, unrecognizedOptions: ["_pq_.x"]),
            .readyForQuery(.inTransaction), .readyForQuery(.failed),
        ]
    }

    private func decodeAllFrontend(_ stream: ByteBuffer, chunk: Int) throws -> [PGFrontendMessage] {
        var decoder = PGFrontendDecoder()
        var pending = ByteBuffer()
        var input = stream
        var out: [PGFrontendMessage] = []
        while input.readableBytes > 0 {
            var piece = input.readSlice(length: min(chunk, input.readableBytes))!
            pending.writeBuffer(&piece)
            while let message = try decoder.next(from: &pending) { out.append(message) }
        }
        try decoder.finish(remaining: pending)
        return out
    }

    func testFrontendRoundTripPackedAndSplitAtEveryChunkSize() throws {
        var stream = ByteBuffer()
        for message in extendedSession { PGEncoding.write(message, into: &stream) }
        for chunk in [1, 2, 3, 5, 7, 13, 64, stream.readableBytes] {
            XCTAssertEqual(try decodeAllFrontend(stream, chunk: chunk), extendedSession, "chunk \(chunk)")
        }
    }

    func testBackendRoundTripPackedAndSplit() throws {
        var stream = ByteBuffer()
        for message in backendSession { PGEncoding.write(message, into: &stream) }
        for chunk in [1, 4, 9, stream.readableBytes] {
            var decoder = PGBackendDecoder()
            var pending = ByteBuffer()
            var input = stream
            var out: [PGBackendMessage] = []
            while input.readableBytes > 0 {
                var piece = input.readSlice(length: min(chunk, input.readableBytes))!
                pending.writeBuffer(&piece)
                while let message = try decoder.next(from: &pending) { out.append(message) }
            }
            XCTAssertEqual(out, backendSession, "chunk \(chunk)")
            XCTAssertEqual(pending.readableBytes, 0)
        }
    }

    func testErrorFieldsExposeSeverityCodeAndMessage() throws {
        var bytes = PGEncoding.bytes(backendSession[10])
        var decoder = PGBackendDecoder()
        guard case .errorResponse(let fields) = try decoder.next(from: &bytes) else {
            return XCTFail("not an ErrorResponse")
        }
        XCTAssertEqual(fields.severity, "ERROR")
        XCTAssertEqual(fields.sqlState, "42P01")
        XCTAssertEqual(fields.message, "relation \"nope\" does not exist")
        XCTAssertEqual(fields.position, "15")
        XCTAssertNil(fields.hint)
    }

    func testBindParameterDescriptions() {
        let bind = PGBind(
            portal: "", statement: "", parameterFormats: [0, 1],
            parameters: [ByteBuffer(string: "abc"), ByteBuffer(bytes: [0, 0x2A]), nil], resultFormats: [])
        XCTAssertEqual(bind.parameterDescriptions(), ["abc", "\\x002a", nil])
    }

    func testSSLRequestThenNThenStartupAgain() throws {
        var conversation = PGConversation()
        var client = PGEncoding.bytes(.sslRequest)
        XCTAssertEqual(try conversation.nextFromClient(&client), .sslRequest)
        XCTAssertEqual(conversation.frontend.state, .awaitingEncryptionResponse(.ssl))
        XCTAssertNil(try conversation.nextFromClient(&client))

        var server = ByteBuffer(string: "N")
        XCTAssertEqual(try conversation.nextFromServer(&server), .encryptionResponse(accepted: false))
        XCTAssertEqual(conversation.frontend.state, .expectingStartup)

        client = PGEncoding.bytes(startup)
        PGEncoding.write(.query("SELECT 1"), into: &client)
        XCTAssertEqual(try conversation.nextFromClient(&client), startup)
        XCTAssertEqual(try conversation.nextFromClient(&client), .query("SELECT 1"))
        XCTAssertEqual(conversation.frontend.state, .messages)
    }

    func testSSLAcceptedMakesBothDirectionsOpaque() throws {
        var conversation = PGConversation()
        var client = PGEncoding.bytes(.sslRequest)
        _ = try conversation.nextFromClient(&client)
        var server = ByteBuffer(string: "S\u{16}\u{03}")
        XCTAssertEqual(try conversation.nextFromServer(&server), .encryptionResponse(accepted: true))
        XCTAssertNil(try conversation.nextFromServer(&server))
        XCTAssertEqual(server.readableBytes, 0)
        var tls = ByteBuffer(bytes: [0x16, 0x03, 0x01, 0x02, 0x00])
        XCTAssertNil(try conversation.nextFromClient(&tls))
        XCTAssertEqual(conversation.frontend.state, .encrypted)
    }

    func testGSSENCRequestAnsweredN() throws {
        var conversation = PGConversation()
        var client = PGEncoding.bytes(.gssEncRequest)
        XCTAssertEqual(try conversation.nextFromClient(&client), .gssEncRequest)
        var server = ByteBuffer(string: "S")  // 'S' is not a valid answer to GSSENCRequest
        XCTAssertThrowsError(try conversation.nextFromServer(&server)) {
            XCTAssertEqual(($0 as? PGWireError)?.code, .unexpectedEncryptionResponse(UInt8(ascii: "S")))
        }
    }

    func testPlaintextPipelinedBehindSSLRequestIsRefused() throws {
        var decoder = PGFrontendDecoder()
        var client = PGEncoding.bytes(.sslRequest)
        PGEncoding.write(startup, into: &client)
        XCTAssertEqual(try decoder.next(from: &client), .sslRequest)
        let remaining = client.readableBytes
        XCTAssertGreaterThan(remaining, 0)
        XCTAssertThrowsError(try decoder.next(from: &client)) {
            XCTAssertEqual(($0 as? PGWireError)?.code, .dataAfterEncryptionRequest(bytes: remaining))
        }
    }

    func testCancelRequestEndsTheStream() throws {
        var decoder = PGFrontendDecoder()
        var client = PGEncoding.bytes(.cancelRequest(processID: 4242, secretKey: -7))
        // Split across two reads.
        var first = client.readSlice(length: 9)!
        XCTAssertNil(try decoder.next(from: &first))
        first.writeBuffer(&client)
        XCTAssertEqual(try decoder.next(from: &first), .cancelRequest(processID: 4242, secretKey: -7))
        XCTAssertEqual(decoder.state, .finished)
        var extra = ByteBuffer(string: "Q")
        XCTAssertThrowsError(try decoder.next(from: &extra))
    }

    func testOversizedAndUndersizedStartupRejected() {
        var decoder = PGFrontendDecoder(maximumStartupLength: 64)
        var long = PGEncoding.bytes(
            .startup(
                protocolVersion: PGStartupCode.protocol3,
                parameters: [PGStartupParameter(name: "options", value: String(repeating: "x", count: 100))]))
        XCTAssertThrowsError(try decoder.next(from: &long)) {
            XCTAssertEqual(($0 as? PGWireError)?.code, .startupPacketTooLong(length: 118, maximum: 64))
        }
        // Only the 4-byte header is needed to refuse: no waiting for 2 GB to arrive.
        var huge = ByteBuffer(bytes: [0x7F, 0xFF, 0xFF, 0xFF])
        var fresh = PGFrontendDecoder()
        XCTAssertThrowsError(try fresh.next(from: &huge))
        var short = ByteBuffer(bytes: [0, 0, 0, 4])
        fresh = PGFrontendDecoder()
        XCTAssertThrowsError(try fresh.next(from: &short)) {
            XCTAssertEqual(($0 as? PGWireError)?.code, .startupPacketTooShort(length: 4))
        }
    }

    func testProtocolVersion2Rejected() {
        var bytes = PGEncoding.bytes(.startup(protocolVersion: 2 << 16, parameters: []))
        var decoder = PGFrontendDecoder()
        XCTAssertThrowsError(try decoder.next(from: &bytes)) {
            XCTAssertEqual(($0 as? PGWireError)?.code, .unsupportedProtocolVersion(2 << 16))
        }
    }

    func testTypedMessageLengthBelowFourAndOversizedRejected() throws {
        var decoder = PGFrontendDecoder(maximumMessageLength: 1000)
        var bytes = PGEncoding.bytes(startup)
        XCTAssertEqual(try decoder.next(from: &bytes), startup)
        var bad = ByteBuffer(bytes: [UInt8(ascii: "Q"), 0, 0, 0, 3])
        XCTAssertThrowsError(try decoder.next(from: &bad)) {
            XCTAssertEqual(($0 as? PGWireError)?.code, .invalidMessageLength(type: UInt8(ascii: "Q"), length: 3))
        }
        var big = ByteBuffer(bytes: [UInt8(ascii: "Q"), 0, 1, 0, 0])
        XCTAssertThrowsError(try decoder.next(from: &big)) {
            XCTAssertEqual(
                ($0 as? PGWireError)?.code, .messageTooLong(type: UInt8(ascii: "Q"), length: 65_536, maximum: 1000))
        }
    }

    func testMalformedBodiesAreTypedErrors() {
        // Query without its NUL terminator.
        XCTAssertThrowsError(
            try PGFrontendDecoder.decode(PGRawMessage(type: UInt8(ascii: "Q"), body: ByteBuffer(string: "SELECT")))
        ) {
            guard case .malformedMessage(let type, _) = ($0 as? PGWireError)?.code else { return XCTFail("\($0)") }
            XCTAssertEqual(type, UInt8(ascii: "Q"))
        }
        // Bind whose parameter count claims more values than the body holds.
        var body = ByteBuffer(string: "\0\0")
        body.writeInteger(Int16(0), endianness: .big)
        body.writeInteger(Int16(1000), endianness: .big)
        XCTAssertThrowsError(try PGFrontendDecoder.decode(PGRawMessage(type: UInt8(ascii: "B"), body: body)))
        // A parameter value length running past the end.
        var value = ByteBuffer(string: "\0\0")
        value.writeInteger(Int16(0), endianness: .big)
        value.writeInteger(Int16(1), endianness: .big)
        value.writeInteger(Int32(50), endianness: .big)
        XCTAssertThrowsError(try PGFrontendDecoder.decode(PGRawMessage(type: UInt8(ascii: "B"), body: value)))
        // Unknown ReadyForQuery status.
        XCTAssertThrowsError(
            try PGBackendDecoder.decode(PGRawMessage(type: UInt8(ascii: "Z"), body: ByteBuffer(string: "X"))))
    }

    /// Bytes of a Bind with `count` one-byte text parameters, written by hand (not by
    /// PGEncoding) so the decoder is tested against the wire format itself.
    private func bindBody(parameters count: Int) -> ByteBuffer {
        var body = ByteBuffer(string: "p\0s\0")
        body.writeInteger(UInt16(1), endianness: .big)  // one format code for all parameters
        body.writeInteger(Int16(0), endianness: .big)
        body.writeInteger(UInt16(count), endianness: .big)
        for index in 0..<count {
            body.writeInteger(Int32(1), endianness: .big)
            body.writeInteger(UInt8(ascii: "0") + UInt8(index % 10))
        }
        body.writeInteger(UInt16(0), endianness: .big)
        return body
    }

    func testCountsOf32768AndMoreAreUnsigned() throws {
        // PostgreSQL accepts up to 65,535 Bind parameters; counts are UInt16 on the wire.
        for count in [40_000, 65_535] {
            let decoded = try PGFrontendDecoder.decode(PGRawMessage(type: UInt8(ascii: "B"), body: bindBody(parameters: count)))
            guard case .bind(let bind) = decoded else { return XCTFail("not a Bind: \(decoded)") }
            XCTAssertEqual(bind.parameters.count, count)
            XCTAssertEqual(bind.parameterFormats, [0])
            XCTAssertEqual(bind.parameters.last??.getString(at: bind.parameters.last!!.readerIndex, length: 1), "\((count - 1) % 10)")
        }

        // The same Bind through the streaming decoder, after a startup packet.
        var stream = PGEncoding.bytes(startup)
        var bind = bindBody(parameters: 40_000)
        stream.writeInteger(UInt8(ascii: "B"))
        stream.writeInteger(Int32(4 + bind.readableBytes), endianness: .big)
        stream.writeBuffer(&bind)
        var decoder = PGFrontendDecoder()
        XCTAssertEqual(try decoder.next(from: &stream), startup)
        guard case .bind(let streamed) = try decoder.next(from: &stream) else { return XCTFail("no Bind") }
        XCTAssertEqual(streamed.parameters.count, 40_000)

        // Parse's type count, and the server's RowDescription, DataRow and ParameterDescription.
        var parse = ByteBuffer(string: "\0SELECT\0")
        parse.writeInteger(UInt16(40_000), endianness: .big)
        for _ in 0..<40_000 { parse.writeInteger(UInt32(23), endianness: .big) }
        guard case .parse(_, _, let types) = try PGFrontendDecoder.decode(PGRawMessage(type: UInt8(ascii: "P"), body: parse))
        else { return XCTFail("no Parse") }
        XCTAssertEqual(types.count, 40_000)

        var row = ByteBuffer()
        row.writeInteger(UInt16(40_000), endianness: .big)
        for _ in 0..<40_000 { row.writeInteger(Int32(-1), endianness: .big) }
        XCTAssertEqual(
            try PGBackendDecoder.decode(PGRawMessage(type: UInt8(ascii: "D"), body: row)),
            .dataRow(Array(repeating: nil, count: 40_000)))

        var parameters = ByteBuffer()
        parameters.writeInteger(UInt16(40_000), endianness: .big)
        for _ in 0..<40_000 { parameters.writeInteger(UInt32(25), endianness: .big) }
        XCTAssertEqual(
            try PGBackendDecoder.decode(PGRawMessage(type: UInt8(ascii: "t"), body: parameters)),
            .parameterDescription(Array(repeating: 25, count: 40_000)))

        let field = PGFieldDescription(
            name: "c", tableOID: 0, columnAttribute: -1, typeOID: 25, typeSize: -1, typeModifier: -1, format: 0)
        var description = ByteBuffer()
        description.writeInteger(UInt16(40_000), endianness: .big)
        for _ in 0..<40_000 {
            description.writeString("c\0")
            description.writeInteger(UInt32(0), endianness: .big)
            description.writeInteger(Int16(-1), endianness: .big)  // signed: system columns are negative
            description.writeInteger(UInt32(25), endianness: .big)
            description.writeInteger(Int16(-1), endianness: .big)
            description.writeInteger(Int32(-1), endianness: .big)
            description.writeInteger(Int16(0), endianness: .big)
        }
        XCTAssertEqual(
            try PGBackendDecoder.decode(PGRawMessage(type: UInt8(ascii: "T"), body: description)),
            .rowDescription(Array(repeating: field, count: 40_000)))

        // The encoder writes such counts too (it trapped on Int16 overflow), and they round-trip.
        let wide = PGBind(
            portal: "", statement: "s", parameterFormats: [],
            parameters: Array(repeating: ByteBuffer(string: "1"), count: 40_000), resultFormats: [])
        var encoded = PGEncoding.bytes(.bind(wide))
        var framing = PGFrontendDecoder(state: .messages)
        XCTAssertEqual(try framing.next(from: &encoded), .bind(wide))
        var encodedRow = PGEncoding.bytes(.dataRow(Array(repeating: nil, count: 65_535)))
        var backend = PGBackendDecoder()
        XCTAssertEqual(try backend.next(from: &encodedRow), .dataRow(Array(repeating: nil, count: 65_535)))
    }

    func testTruncatedAtEndOfStream() throws {
        var decoder = PGFrontendDecoder()
        var bytes = PGEncoding.bytes(startup)
        _ = try decoder.next(from: &bytes)
        var partial = PGEncoding.bytes(.query("SELECT 1"))
        partial.moveWriterIndex(to: partial.writerIndex - 3)
        XCTAssertNil(try decoder.next(from: &partial))
        XCTAssertThrowsError(try decoder.finish(remaining: partial)) {
            XCTAssertEqual(($0 as? PGWireError)?.code, .truncated(expectedBytes: 14, receivedBytes: 11))
        }
    }

    func testUnknownTypesPassThroughAsUnknown() throws {
        let raw = PGRawMessage(type: UInt8(ascii: "z"), body: ByteBuffer(string: "abc"))
        XCTAssertEqual(try PGFrontendDecoder.decode(raw), .unknown(type: UInt8(ascii: "z"), body: ByteBuffer(string: "abc")))
    }

    func testNIODecoderWithVerifier() throws {
        // The verifier feeds the stream whole, byte by byte and in random pieces, repeatedly on
        // one channel: so typed messages only, without the startup packet and Terminate.
        let typed = extendedSession.dropFirst().dropLast()
        var stream = ByteBuffer()
        for message in typed { PGEncoding.write(message, into: &stream) }
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: [(stream, Array(typed))],
            decoderFactory: { PGFrontendMessageDecoder(PGFrontendDecoder(state: .messages)) }
        )
    }

    func testEmbeddedChannelDialogue() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(PGBackendMessageDecoder()))
        var stream = ByteBuffer()
        PGEncoding.write(.authentication(.ok), into: &stream)
        PGEncoding.write(.readyForQuery(.idle), into: &stream)
        var head = stream.readSlice(length: 7)!
        try channel.writeInbound(head)
        XCTAssertEqual(try channel.readInbound(as: PGBackendMessage.self), nil)
        head = stream
        try channel.writeInbound(head)
        XCTAssertEqual(try channel.readInbound(as: PGBackendMessage.self), .authentication(.ok))
        XCTAssertEqual(try channel.readInbound(as: PGBackendMessage.self), .readyForQuery(.idle))
        // A half message at close is an error, not silence.
        try channel.writeInbound(ByteBuffer(bytes: [UInt8(ascii: "Z"), 0, 0]))
        XCTAssertThrowsError(try channel.finish())
    }
}
