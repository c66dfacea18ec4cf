import NIOCore

/// One typed message as framed on the wire: its type byte and its body (after the length).
public struct PGRawMessage: Equatable, Sendable {
    public var type: UInt8
    public var body: ByteBuffer

    public init(type: UInt8, body: ByteBuffer) {
        self.type = type
        self.body = body
    }

    /// Bytes the message occupies on the wire (type + length + body).
    public var wireSize: Int { 5 + body.readableBytes }
}

/// Pure framing steps: each returns nil (consuming nothing) until the whole packet is
/// buffered, so bytes split across reads at any position, or packed several per read, frame
/// the same way.
public enum PGFraming {
    /// PostgreSQL's own MAX_STARTUP_PACKET_LENGTH.
    public static let defaultMaximumStartupLength = 10_000
    /// PostgreSQL's PQ_LARGE_MESSAGE_LIMIT is 1 GiB − 1.
    public static let defaultMaximumMessageLength = (1 << 30) - 1
    /// Untyped packets are length (4) + code (4) at least.
    public static let minimumStartupLength = 8

    /// The next untyped first packet: its code and the body after the code.
    public static func nextUntypedPacket(
        from buffer: inout ByteBuffer, maximumLength: Int = defaultMaximumStartupLength
    ) throws -> (code: UInt32, body: ByteBuffer)? {
        guard let declared = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: Int32.self) else {
            return nil
        }
        let length = Int(declared)
        if length < minimumStartupLength { throw PGWireError(.startupPacketTooShort(length: length)) }
        if length > maximumLength { throw PGWireError(.startupPacketTooLong(length: length, maximum: maximumLength)) }
        guard buffer.readableBytes >= length else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        let code = buffer.readInteger(endianness: .big, as: UInt32.self)!
        let body = buffer.readSlice(length: length - 8)!
        return (code, body)
    }

    /// The next typed message (type byte + 32-bit length counting itself + body).
    public static func nextTypedMessage(
        from buffer: inout ByteBuffer, maximumLength: Int = defaultMaximumMessageLength
    ) throws -> PGRawMessage? {
        guard buffer.readableBytes >= 5 else { return nil }
        let start = buffer.readerIndex
        let type = buffer.getInteger(at: start, as: UInt8.self)!
        let length = Int(buffer.getInteger(at: start + 1, endianness: .big, as: Int32.self)!)
        if length < 4 { throw PGWireError(.invalidMessageLength(type: type, length: length)) }
        if length > maximumLength {
            throw PGWireError(.messageTooLong(type: type, length: length, maximum: maximumLength))
        }
        guard buffer.readableBytes >= 1 + length else { return nil }
        buffer.moveReaderIndex(forwardBy: 5)
        return PGRawMessage(type: type, body: buffer.readSlice(length: length - 4)!)
    }

    /// How many bytes the message starting at the reader index will occupy, once its header
    /// is buffered (for truncation reports).
    static func expectedTypedSize(_ buffer: ByteBuffer) -> Int? {
        buffer.getInteger(at: buffer.readerIndex + 1, endianness: .big, as: Int32.self).map { Int($0) + 1 }
    }
}

/// Reading message fields; every failure is a `malformedMessage` naming the message type.
struct PGBodyReader {
    var buffer: ByteBuffer
    let type: UInt8

    init(_ buffer: ByteBuffer, type: UInt8) {
        self.buffer = buffer
        self.type = type
    }

    func fail(_ reason: String) -> PGWireError { PGWireError(.malformedMessage(type: type, reason: reason)) }

    mutating func cString(_ field: String) throws -> String {
        let view = buffer.readableBytesView
        guard let zero = view.firstIndex(of: 0) else { throw fail("\(field) is not NUL-terminated") }
        let length = zero - view.startIndex
        let text = buffer.readString(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        return text
    }

    mutating func int32(_ field: String) throws -> Int32 {
        guard let value = buffer.readInteger(endianness: .big, as: Int32.self) else { throw fail("\(field) missing") }
        return value
    }

    mutating func uint32(_ field: String) throws -> UInt32 {
        guard let value = buffer.readInteger(endianness: .big, as: UInt32.self) else { throw fail("\(field) missing") }
        return value
    }

    mutating func int16(_ field: String) throws -> Int16 {
        guard let value = buffer.readInteger(endianness: .big, as: Int16.self) else { throw fail("\(field) missing") }
        return value
    }

    mutating func byte(_ field: String) throws -> UInt8 {
        guard let value = buffer.readInteger(as: UInt8.self) else { throw fail("\(field) missing") }
        return value
    }

    /// A 16-bit count followed by that many items; a count that cannot fit is malformed.
    /// Counts are unsigned on the wire: PostgreSQL accepts up to 65,535 Bind parameters, and
    /// reading them as Int16 made 32,768 and more negative.
    mutating func count(_ field: String, minimumItemSize: Int) throws -> Int {
        guard let raw = buffer.readInteger(endianness: .big, as: UInt16.self) else { throw fail("\(field) missing") }
        let count = Int(raw)
        guard count * minimumItemSize <= buffer.readableBytes else {
            throw fail("\(field) count \(count) does not fit the message")
        }
        return count
    }

    /// An Int32 length followed by bytes; −1 is NULL.
    mutating func nullableBytes(_ field: String) throws -> ByteBuffer? {
        let length = Int(try int32(field))
        if length == -1 { return nil }
        guard length >= 0, let bytes = buffer.readSlice(length: length) else {
            throw fail("\(field) length \(length) does not fit the message")
        }
        return bytes
    }

    mutating func rest() -> ByteBuffer { buffer.readSlice(length: buffer.readableBytes)! }

    func expectEnd() throws {
        if buffer.readableBytes != 0 { throw fail("\(buffer.readableBytes) unexpected trailing bytes") }
    }
}
