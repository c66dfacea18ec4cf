import NIOCore

/// Writes messages in wire format: for clients, test peers, and the proxy's own replies.
public enum PGEncoding {
    /// Appends `message`; the length prefix is patched in after the body is written.
    public static func write(_ message: PGFrontendMessage, into buffer: inout ByteBuffer) {
        switch message {
        case .startup(let version, let parameters):
            untyped(into: &buffer) { body in
                body.writeInteger(version, endianness: .big)
                for parameter in parameters {
                    cString(parameter.name, &body)
                    cString(parameter.value, &body)
                }
                body.writeInteger(UInt8(0))
            }
        case .sslRequest:
            untyped(into: &buffer) { $0.writeInteger(PGStartupCode.sslRequest, endianness: .big) }
        case .gssEncRequest:
            untyped(into: &buffer) { $0.writeInteger(PGStartupCode.gssEncRequest, endianness: .big) }
        case .cancelRequest(let processID, let secretKey):
            untyped(into: &buffer) {
                $0.writeInteger(PGStartupCode.cancelRequest, endianness: .big)
                $0.writeInteger(processID, endianness: .big)
                $0.writeInteger(secretKey, endianness: .big)
            }
        case .query(let text):
            typed("Q", into: &buffer) { cString(text, &$0) }
        case .parse(let statement, let query, let types):
            typed("P", into: &buffer) { body in
                cString(statement, &body)
                cString(query, &body)
                writeCount(types.count, &body)
                for type in types { body.writeInteger(type, endianness: .big) }
            }
        case .bind(let bind):
            typed("B", into: &buffer) { body in
                cString(bind.portal, &body)
                cString(bind.statement, &body)
                writeCount(bind.parameterFormats.count, &body)
                for format in bind.parameterFormats { body.writeInteger(format, endianness: .big) }
                writeCount(bind.parameters.count, &body)
                for value in bind.parameters { nullable(value, &body) }
                writeCount(bind.resultFormats.count, &body)
                for format in bind.resultFormats { body.writeInteger(format, endianness: .big) }
            }
        case .describe(let kind, let name):
            typed("D", into: &buffer) {
                $0.writeInteger(kind.rawValue)
                cString(name, &$0)
            }
        case .close(let kind, let name):
            typed("C", into: &buffer) {
                $0.writeInteger(kind.rawValue)
                cString(name, &$0)
            }
        case .execute(let portal, let maxRows):
            typed("E", into: &buffer) {
                cString(portal, &$0)
                $0.writeInteger(maxRows, endianness: .big)
            }
        case .sync: typed("S", into: &buffer) { _ in }
        case .flush: typed("H", into: &buffer) { _ in }
        case .terminate: typed("X", into: &buffer) { _ in }
        case .authenticationResponse(var data): typed("p", into: &buffer) { $0.writeBuffer(&data) }
        case .copyData(var data): typed("d", into: &buffer) { $0.writeBuffer(&data) }
        case .copyDone: typed("c", into: &buffer) { _ in }
        case .copyFail(let text): typed("f", into: &buffer) { cString(text, &$0) }
        case .functionCall(var data): typed("F", into: &buffer) { $0.writeBuffer(&data) }
        case .unknown(let type, var body): typed(type, into: &buffer) { $0.writeBuffer(&body) }
        }
    }

    public static func write(_ message: PGBackendMessage, into buffer: inout ByteBuffer) {
        switch message {
        case .encryptionResponse(let accepted):
            buffer.writeInteger(UInt8(ascii: accepted ? "S" : "N"))
        case .authentication(let auth):
            typed("R", into: &buffer) { body in
                switch auth {
                case .ok: body.writeInteger(Int32(0), endianness: .big)
                case .kerberosV5: body.writeInteger(Int32(2), endianness: .big)
                case .cleartextPassword: body.writeInteger(Int32(3), endianness: .big)
                case .md5Password(let salt):
                    body.writeInteger(Int32(5), endianness: .big)
                    body.writeInteger(salt, endianness: .big)
                case .gss: body.writeInteger(Int32(7), endianness: .big)
                case .gssContinue(var data):
                    body.writeInteger(Int32(8), endianness: .big)
                    body.writeBuffer(&data)
                case .sspi: body.writeInteger(Int32(9), endianness: .big)
                case .sasl(let mechanisms):
                    body.writeInteger(Int32(10), endianness: .big)
                    for mechanism in mechanisms { cString(mechanism, &body) }
                    body.writeInteger(UInt8(0))
                case .saslContinue(var data):
                    body.writeInteger(Int32(11), endianness: .big)
                    body.writeBuffer(&data)
                case .saslFinal(var data):
                    body.writeInteger(Int32(12), endianness: .big)
                    body.writeBuffer(&data)
                case .other(let code, var data):
                    body.writeInteger(code, endianness: .big)
                    body.writeBuffer(&data)
                }
            }
        case .parameterStatus(let name, let value):
            typed("S", into: &buffer) {
                cString(name, &$0)
                cString(value, &$0)
            }
        case .backendKeyData(let processID, let secretKey):
            typed("K", into: &buffer) {
                $0.writeInteger(processID, endianness: .big)
                $0.writeInteger(secretKey, endianness: .big)
            }
        case .readyForQuery(let status):
            typed("Z", into: &buffer) { $0.writeInteger(status.rawValue) }
        case .rowDescription(let fields):
            typed("T", into: &buffer) { body in
                writeCount(fields.count, &body)
                for field in fields {
                    cString(field.name, &body)
                    body.writeInteger(field.tableOID, endianness: .big)
                    body.writeInteger(field.columnAttribute, endianness: .big)
                    body.writeInteger(field.typeOID, endianness: .big)
                    body.writeInteger(field.typeSize, endianness: .big)
                    body.writeInteger(field.typeModifier, endianness: .big)
                    body.writeInteger(field.format, endianness: .big)
                }
            }
        case .dataRow(let values):
            typed("D", into: &buffer) { body in
                writeCount(values.count, &body)
                for value in values { nullable(value, &body) }
            }
        case .commandComplete(let tag): typed("C", into: &buffer) { cString(tag, &$0) }
        case .errorResponse(let fields): typed("E", into: &buffer) { errorFields(fields, &$0) }
        case .noticeResponse(let fields): typed("N", into: &buffer) { errorFields(fields, &$0) }
        case .parseComplete: typed("1", into: &buffer) { _ in }
        case .bindComplete: typed("2", into: &buffer) { _ in }
        case .closeComplete: typed("3", into: &buffer) { _ in }
        case .noData: typed("n", into: &buffer) { _ in }
        case .portalSuspended: typed("s", into: &buffer) { _ in }
        case .emptyQueryResponse: typed("I", into: &buffer) { _ in }
        case .parameterDescription(let types):
            typed("t", into: &buffer) { body in
                writeCount(types.count, &body)
                for type in types { body.writeInteger(type, endianness: .big) }
            }
        case .notification(let processID, let channel, let payload):
            typed("A", into: &buffer) {
                $0.writeInteger(processID, endianness: .big)
                cString(channel, &$0)
                cString(payload, &$0)
            }
        case .copyInResponse(var data): typed("G", into: &buffer) { $0.writeBuffer(&data) }
        case .copyOutResponse(var data): typed("H", into: &buffer) { $0.writeBuffer(&data) }
        case .copyBothResponse(var data): typed("W", into: &buffer) { $0.writeBuffer(&data) }
        case .copyData(var data): typed("d", into: &buffer) { $0.writeBuffer(&data) }
        case .copyDone: typed("c", into: &buffer) { _ in }
        case .functionCallResponse(let value): typed("V", into: &buffer) { nullable(value, &$0) }
        case .negotiateProtocolVersion(let minor, let options):
            typed("v", into: &buffer) { body in
                body.writeInteger(minor, endianness: .big)
                body.writeInteger(Int32(options.count), endianness: .big)
                for option in options { cString(option, &body) }
            }
        case .unknown(let type, var body): typed(type, into: &buffer) { $0.writeBuffer(&body) }
        }
    }

    public static func bytes(_ message: PGFrontendMessage) -> ByteBuffer {
        var buffer = ByteBuffer()
        write(message, into: &buffer)
        return buffer
    }

    public static func bytes(_ message: PGBackendMessage) -> ByteBuffer {
        var buffer = ByteBuffer()
        write(message, into: &buffer)
        return buffer
    }

    private static func typed(_ type: Unicode.Scalar, into buffer: inout ByteBuffer, _ body: (inout ByteBuffer) -> Void) {
        typed(UInt8(ascii: type), into: &buffer, body)
    }

    private static func typed(_ type: UInt8, into buffer: inout ByteBuffer, _ body: (inout ByteBuffer) -> Void) {
        buffer.writeInteger(type)
        let lengthIndex = buffer.writerIndex
        buffer.writeInteger(Int32(0))
        body(&buffer)
        buffer.setInteger(Int32(buffer.writerIndex - lengthIndex), at: lengthIndex, endianness: .big)
    }

    private static func untyped(into buffer: inout ByteBuffer, _ body: (inout ByteBuffer) -> Void) {
        let lengthIndex = buffer.writerIndex
        buffer.writeInteger(Int32(0))
        body(&buffer)
        buffer.setInteger(Int32(buffer.writerIndex - lengthIndex), at: lengthIndex, endianness: .big)
    }

    /// The protocol's 16-bit counts are unsigned (up to 65,535). A message with more items
    /// cannot be expressed at all: building one is a programming error, not input to handle.
    private static func writeCount(_ count: Int, _ buffer: inout ByteBuffer) {
        precondition(count <= Int(UInt16.max), "PostgreSQL messages carry at most 65,535 items per list (got \(count))")
        buffer.writeInteger(UInt16(count), endianness: .big)
    }

    private static func cString(_ text: String, _ buffer: inout ByteBuffer) {
        buffer.writeString(text)
        buffer.writeInteger(UInt8(0))
    }

    private static func nullable(_ value: ByteBuffer?, _ buffer: inout ByteBuffer) {
        if var value {
            buffer.writeInteger(Int32(value.readableBytes), endianness: .big)
            buffer.writeBuffer(&value)
        } else {
            buffer.writeInteger(Int32(-1), endianness: .big)
        }
    }

    private static func errorFields(_ fields: PGErrorFields, _ buffer: inout ByteBuffer) {
        for (code, value) in fields.fields.sorted(by: { $0.key < $1.key }) {
            buffer.writeInteger(code)
            cString(value, &buffer)
        }
        buffer.writeInteger(UInt8(0))
    }
}
