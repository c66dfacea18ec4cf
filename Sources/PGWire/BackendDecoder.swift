import NIOCore

/// Incremental decoder of the server → client stream. After the client's SSLRequest or
/// GSSENCRequest the server answers with one untyped byte; tell the decoder to expect it.
public struct PGBackendDecoder: Sendable {
    public enum State: Equatable, Sendable {
        case messages
        case awaitingEncryptionResponse(PGEncryptionRequest)
        case encrypted
    }

    public private(set) var state: State = .messages
    public var maximumMessageLength: Int

    public init(maximumMessageLength: Int = PGFraming.defaultMaximumMessageLength) {
        self.maximumMessageLength = maximumMessageLength
    }

    public mutating func expectEncryptionResponse(_ request: PGEncryptionRequest) {
        state = .awaitingEncryptionResponse(request)
    }

    public mutating func next(from buffer: inout ByteBuffer) throws -> PGBackendMessage? {
        switch state {
        case .awaitingEncryptionResponse(let request):
            guard let byte = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return nil }
            switch byte {
            case UInt8(ascii: "N"):
                buffer.moveReaderIndex(forwardBy: 1)
                state = .messages
                return .encryptionResponse(accepted: false)
            case UInt8(ascii: "S") where request == .ssl, UInt8(ascii: "G") where request == .gss:
                buffer.moveReaderIndex(forwardBy: 1)
                state = .encrypted
                return .encryptionResponse(accepted: true)
            case UInt8(ascii: "E"):
                // A server that does not know the request answers with an ErrorResponse.
                state = .messages
                return try next(from: &buffer)
            default:
                throw PGWireError(.unexpectedEncryptionResponse(byte))
            }
        case .messages:
            guard let raw = try PGFraming.nextTypedMessage(from: &buffer, maximumLength: maximumMessageLength)
            else { return nil }
            return try Self.decode(raw)
        case .encrypted:
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            return nil
        }
    }

    public func finish(remaining buffer: ByteBuffer) throws {
        guard buffer.readableBytes > 0, state == .messages else { return }
        throw PGWireError(
            .truncated(
                expectedBytes: PGFraming.expectedTypedSize(buffer) ?? 5, receivedBytes: buffer.readableBytes))
    }

    /// Decodes one framed typed message from a server.
    public static func decode(_ raw: PGRawMessage) throws -> PGBackendMessage {
        var reader = PGBodyReader(raw.body, type: raw.type)
        switch raw.type {
        case UInt8(ascii: "R"):
            return .authentication(try authentication(&reader))
        case UInt8(ascii: "S"):
            let name = try reader.cString("parameter name")
            return .parameterStatus(name: name, value: try reader.cString("parameter value"))
        case UInt8(ascii: "K"):
            let processID = try reader.int32("process ID")
            return .backendKeyData(processID: processID, secretKey: try reader.int32("secret key"))
        case UInt8(ascii: "Z"):
            let byte = try reader.byte("transaction status")
            guard let status = PGTransactionStatus(rawValue: byte) else {
                throw reader.fail("transaction status \(byte) is not 'I', 'T' or 'E'")
            }
            return .readyForQuery(status)
        case UInt8(ascii: "T"):
            let count = try reader.count("fields", minimumItemSize: 19)
            var fields: [PGFieldDescription] = []
            fields.reserveCapacity(count)
            for _ in 0..<count {
                fields.append(
                    PGFieldDescription(
                        name: try reader.cString("field name"), tableOID: try reader.uint32("table OID"),
                        columnAttribute: try reader.int16("column number"), typeOID: try reader.uint32("type OID"),
                        typeSize: try reader.int16("type size"), typeModifier: try reader.int32("type modifier"),
                        format: try reader.int16("format")))
            }
            return .rowDescription(fields)
        case UInt8(ascii: "D"):
            let count = try reader.count("columns", minimumItemSize: 4)
            var values: [ByteBuffer?] = []
            values.reserveCapacity(count)
            for _ in 0..<count { values.append(try reader.nullableBytes("column value")) }
            return .dataRow(values)
        case UInt8(ascii: "C"):
            return .commandComplete(tag: try reader.cString("command tag"))
        case UInt8(ascii: "E"), UInt8(ascii: "N"):
            var fields: [UInt8: String] = [:]
            while true {
                let code = try reader.byte("field code")
                if code == 0 { break }
                fields[code] = try reader.cString("field \(PGWireError.typeName(code))")
            }
            let parsed = PGErrorFields(fields: fields)
            return raw.type == UInt8(ascii: "E") ? .errorResponse(parsed) : .noticeResponse(parsed)
        case UInt8(ascii: "1"): return .parseComplete
        case UInt8(ascii: "2"): return .bindComplete
        case UInt8(ascii: "3"): return .closeComplete
        case UInt8(ascii: "n"): return .noData
        case UInt8(ascii: "s"): return .portalSuspended
        case UInt8(ascii: "I"): return .emptyQueryResponse
        case UInt8(ascii: "t"):
            let count = try reader.count("parameters", minimumItemSize: 4)
            var types: [UInt32] = []
            for _ in 0..<count { types.append(try reader.uint32("parameter type")) }
            return .parameterDescription(types)
        case UInt8(ascii: "A"):
            let processID = try reader.int32("process ID")
            let channel = try reader.cString("channel")
            return .notification(processID: processID, channel: channel, payload: try reader.cString("payload"))
        case UInt8(ascii: "G"): return .copyInResponse(reader.rest())
        case UInt8(ascii: "H"): return .copyOutResponse(reader.rest())
        case UInt8(ascii: "W"): return .copyBothResponse(reader.rest())
        case UInt8(ascii: "d"): return .copyData(reader.rest())
        case UInt8(ascii: "c"): return .copyDone
        case UInt8(ascii: "V"): return .functionCallResponse(try reader.nullableBytes("result"))
        case UInt8(ascii: "v"):
            let minor = try reader.int32("newest minor version")
            let count = Int(try reader.int32("option count"))
            guard count >= 0, count <= reader.buffer.readableBytes else {
                throw reader.fail("option count \(count) does not fit the message")
            }
            var options: [String] = []
            for _ in 0..<count { options.append(try reader.cString("option")) }
            return .negotiateProtocolVersion(newestMinor: minor, unrecognizedOptions: options)
        default:
            return .unknown(type: raw.type, body: raw.body)
        }
    }

    private static func authentication(_ reader: inout PGBodyReader) throws -> PGAuthentication {
        let code = try reader.int32("authentication code")
        switch code {
        case 0: return .ok
        case 2: return .kerberosV5
        case 3: return .cleartextPassword
        case 5: return .md5Password(salt: try reader.uint32("salt"))
        case 7: return .gss
        case 8: return .gssContinue(reader.rest())
        case 9: return .sspi
        case 10:
            var mechanisms: [String] = []
            while true {
                let name = try reader.cString("SASL mechanism")
                if name.isEmpty { break }
                mechanisms.append(name)
            }
            return .sasl(mechanisms: mechanisms)
        case 11: return .saslContinue(reader.rest())
        case 12: return .saslFinal(reader.rest())
        default: return .other(code: code, data: reader.rest())
        }
    }
}
