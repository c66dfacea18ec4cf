/// Why a PostgreSQL byte stream could not be decoded. The connection carrying it must be
/// closed: after a framing error nothing further in the stream can be trusted.
public struct PGWireError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: Equatable, Sendable {
        /// First packet declares fewer bytes than the 8 every startup-class packet has.
        case startupPacketTooShort(length: Int)
        /// First packet declares more bytes than allowed (PostgreSQL itself allows 10,000).
        case startupPacketTooLong(length: Int, maximum: Int)
        /// A startup packet asks for a protocol major version other than 3.
        case unsupportedProtocolVersion(UInt32)
        /// A typed message length below 4 (the length counts itself).
        case invalidMessageLength(type: UInt8, length: Int)
        case messageTooLong(type: UInt8, length: Int, maximum: Int)
        /// A message's body does not match its type's layout.
        case malformedMessage(type: UInt8, reason: String)
        /// Bytes arrived while the client should wait for the answer to SSLRequest/GSSENCRequest:
        /// plaintext pipelined behind an encryption request (CVE-2021-23214 class).
        case dataAfterEncryptionRequest(bytes: Int)
        /// The server's reply to an encryption request was neither 'S'/'G' nor 'N'.
        case unexpectedEncryptionResponse(UInt8)
        /// The stream continued after a packet that ends the conversation (CancelRequest).
        case dataAfterEndOfStream(bytes: Int)
        /// The peer closed in the middle of a message.
        case truncated(expectedBytes: Int, receivedBytes: Int)
    }

    public var code: Code

    public init(_ code: Code) { self.code = code }

    public var description: String {
        switch code {
        case .startupPacketTooShort(let length):
            return "startup packet length \(length) is below the minimum of 8 bytes"
        case .startupPacketTooLong(let length, let maximum):
            return "startup packet of \(length) bytes exceeds the maximum of \(maximum) bytes"
        case .unsupportedProtocolVersion(let version):
            return "unsupported protocol version \(version >> 16).\(version & 0xFFFF) (only 3.x is spoken)"
        case .invalidMessageLength(let type, let length):
            return "message '\(PGWireError.typeName(type))' declares length \(length), below the minimum of 4"
        case .messageTooLong(let type, let length, let maximum):
            return "message '\(PGWireError.typeName(type))' of \(length) bytes exceeds the maximum of \(maximum) bytes"
        case .malformedMessage(let type, let reason):
            return "malformed message '\(PGWireError.typeName(type))': \(reason)"
        case .dataAfterEncryptionRequest(let bytes):
            return "\(bytes) bytes of plaintext sent before the answer to an encryption request (refused: man-in-the-middle risk)"
        case .unexpectedEncryptionResponse(let byte):
            return "server answered an encryption request with byte \(byte), expected 'S', 'G' or 'N'"
        case .dataAfterEndOfStream(let bytes):
            return "\(bytes) bytes after a packet that ends the conversation"
        case .truncated(let expected, let received):
            return "stream ended inside a message: expected \(expected) bytes, got \(received)"
        }
    }

    static func typeName(_ type: UInt8) -> String {
        (0x20..<0x7F).contains(type) ? String(UnicodeScalar(type)) : "0x" + String(type, radix: 16)
    }
}
