import NIOCore

/// Incremental decoder of the client → server stream, with the first-packet states:
/// an untyped startup-class packet first; after SSLRequest/GSSENCRequest the client must wait
/// for the server's one-byte answer, and after 'N' it sends an untyped packet again.
public struct PGFrontendDecoder: Sendable {
    public enum State: Equatable, Sendable {
        /// Expecting an untyped packet (startup, SSLRequest, GSSENCRequest, CancelRequest).
        case expectingStartup
        /// Sent an encryption request; nothing may follow until the server answers.
        case awaitingEncryptionResponse(PGEncryptionRequest)
        /// Startup done: typed messages.
        case messages
        /// The server accepted encryption: the rest is TLS/GSS, opaque here.
        case encrypted
        /// CancelRequest or Terminate ended the conversation.
        case finished
    }

    public private(set) var state: State = .expectingStartup
    public var maximumStartupLength: Int
    public var maximumMessageLength: Int

    /// `state` other than `.expectingStartup` joins a stream mid-way (e.g. a capture).
    public init(
        state: State = .expectingStartup,
        maximumStartupLength: Int = PGFraming.defaultMaximumStartupLength,
        maximumMessageLength: Int = PGFraming.defaultMaximumMessageLength
    ) {
        self.state = state
        self.maximumStartupLength = maximumStartupLength
        self.maximumMessageLength = maximumMessageLength
    }

    /// Record the server's (or a proxy's own) answer to the pending encryption request.
    public mutating func encryptionResponse(accepted: Bool) {
        guard case .awaitingEncryptionResponse = state else { return }
        state = accepted ? .encrypted : .expectingStartup
    }

    /// The next complete message, nil when more bytes are needed. Encrypted bytes are skipped.
    public mutating func next(from buffer: inout ByteBuffer) throws -> PGFrontendMessage? {
        switch state {
        case .expectingStartup:
            guard let (code, body) = try PGFraming.nextUntypedPacket(from: &buffer, maximumLength: maximumStartupLength)
            else { return nil }
            return try startupPacket(code: code, body: body)
        case .awaitingEncryptionResponse:
            if buffer.readableBytes > 0 { throw PGWireError(.dataAfterEncryptionRequest(bytes: buffer.readableBytes)) }
            return nil
        case .messages:
            guard let raw = try PGFraming.nextTypedMessage(from: &buffer, maximumLength: maximumMessageLength)
            else { return nil }
            let message = try Self.decode(raw)
            if message == .terminate { state = .finished }
            return message
        case .encrypted:
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            return nil
        case .finished:
            if buffer.readableBytes > 0 { throw PGWireError(.dataAfterEndOfStream(bytes: buffer.readableBytes)) }
            return nil
        }
    }

    /// At end of stream: throws if a message was left incomplete.
    public func finish(remaining buffer: ByteBuffer) throws {
        guard buffer.readableBytes > 0, state != .encrypted else { return }
        let expected: Int
        switch state {
        case .expectingStartup:
            expected = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: Int32.self).map(Int.init) ?? 4
        case .messages:
            expected = PGFraming.expectedTypedSize(buffer) ?? 5
        default:
            expected = 0
        }
        throw PGWireError(.truncated(expectedBytes: expected, receivedBytes: buffer.readableBytes))
    }

    private mutating func startupPacket(code: UInt32, body: ByteBuffer) throws -> PGFrontendMessage {
        switch code {
        case PGStartupCode.sslRequest:
            state = .awaitingEncryptionResponse(.ssl)
            return .sslRequest
        case PGStartupCode.gssEncRequest:
            state = .awaitingEncryptionResponse(.gss)
            return .gssEncRequest
        case PGStartupCode.cancelRequest:
            var reader = PGBodyReader(body, type: 0)
            let processID = try reader.int32("process ID")
            let secretKey = try reader.int32("secret key")
            state = .finished
            return .cancelRequest(processID: processID, secretKey: secretKey)
        default:
            guard code >> 16 == 3 else { throw PGWireError(.unsupportedProtocolVersion(code)) }
            var reader = PGBodyReader(body, type: 0)
            var parameters: [PGStartupParameter] = []
            while true {
                let name = try reader.cString("parameter name")
                if name.isEmpty { break }
                parameters.append(PGStartupParameter(name: name, value: try reader.cString("parameter \(name)")))
            }
            state = .messages
            return .startup(protocolVersion: code, parameters: parameters)
        }
    }

    /// Decodes one framed typed message from a client.
    public static func decode(_ raw: PGRawMessage) throws -> PGFrontendMessage {
        var reader = PGBodyReader(raw.body, type: raw.type)
        switch raw.type {
        case UInt8(ascii: "Q"):
            return .query(try reader.cString("query"))
        case UInt8(ascii: "P"):
            let statement = try reader.cString("statement name")
            let query = try reader.cString("query")
            let count = try reader.count("parameter types", minimumItemSize: 4)
            var types: [UInt32] = []
            types.reserveCapacity(count)
            for _ in 0..<count { types.append(try reader.uint32("parameter type")) }
            return .parse(statement: statement, query: query, parameterTypes: types)
        case UInt8(ascii: "B"):
            let portal = try reader.cString("portal name")
            let statement = try reader.cString("statement name")
            let formatCount = try reader.count("parameter formats", minimumItemSize: 2)
            var formats: [Int16] = []
            formats.reserveCapacity(formatCount)
            for _ in 0..<formatCount { formats.append(try reader.int16("parameter format")) }
            let valueCount = try reader.count("parameter values", minimumItemSize: 4)
            var values: [ByteBuffer?] = []
            values.reserveCapacity(valueCount)
            for _ in 0..<valueCount { values.append(try reader.nullableBytes("parameter value")) }
            let resultCount = try reader.count("result formats", minimumItemSize: 2)
            var results: [Int16] = []
            results.reserveCapacity(resultCount)
            for _ in 0..<resultCount { results.append(try reader.int16("result format")) }
            return .bind(
                PGBind(
                    portal: portal, statement: statement, parameterFormats: formats, parameters: values,
                    resultFormats: results))
        case UInt8(ascii: "D"), UInt8(ascii: "C"):
            let kindByte = try reader.byte("target kind")
            guard let kind = PGTargetKind(rawValue: kindByte) else {
                throw reader.fail("target kind \(kindByte) is neither 'S' nor 'P'")
            }
            let name = try reader.cString("name")
            return raw.type == UInt8(ascii: "D") ? .describe(kind, name: name) : .close(kind, name: name)
        case UInt8(ascii: "E"):
            let portal = try reader.cString("portal name")
            return .execute(portal: portal, maxRows: try reader.int32("row limit"))
        case UInt8(ascii: "S"):
            return .sync
        case UInt8(ascii: "H"):
            return .flush
        case UInt8(ascii: "X"):
            return .terminate
        case UInt8(ascii: "p"):
            return .authenticationResponse(reader.rest())
        case UInt8(ascii: "d"):
            return .copyData(reader.rest())
        case UInt8(ascii: "c"):
            return .copyDone
        case UInt8(ascii: "f"):
            return .copyFail(try reader.cString("error message"))
        case UInt8(ascii: "F"):
            return .functionCall(reader.rest())
        default:
            return .unknown(type: raw.type, body: raw.body)
        }
    }
}
