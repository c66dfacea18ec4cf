import NIOCore

/// A VTP frame could not be decoded; the connection carrying it must be closed.
public enum VTPFramingError: Error, Equatable, CustomStringConvertible {
    case zeroLengthFrame
    case frameTooLarge(length: UInt32, maximum: Int)
    /// The peer closed the connection in the middle of a frame.
    case truncatedFrame(expectedBytes: Int, receivedBytes: Int)
    case payloadTooLarge(bytes: Int)

    public var description: String {
        switch self {
        case .zeroLengthFrame:
            return "zero-length VTP frame (a length prefix of 0 is not a message)"
        case .frameTooLarge(let length, let maximum):
            return "VTP frame of \(length) bytes exceeds the maximum of \(maximum) bytes"
                + " (a non-VTP peer, or a little-endian length prefix?)"
        case .truncatedFrame(let expected, let received):
            return "connection closed inside a VTP frame: expected \(expected) bytes, got \(received)"
        case .payloadTooLarge(let bytes):
            return "payload of \(bytes) bytes does not fit a 32-bit VTP length prefix"
        }
    }
}

public enum VTPFraming {
    /// 1 MiB: well above any real VOEvent, small enough to refuse garbage quickly.
    public static let defaultMaximumFrameSize = 1 << 20
    public static let headerSize = 4

    /// Appends one frame whose payload `writePayload` appends: the one place a length prefix is
    /// written (events, acks, Transport messages and the channel encoder all come here). The
    /// payload must fit the 32-bit prefix; callers bound it first.
    @inline(__always)
    public static func writeFrame(into buffer: inout ByteBuffer, _ writePayload: (inout ByteBuffer) -> Void) {
        let lengthIndex = buffer.writerIndex
        buffer.writeInteger(UInt32(0), endianness: .big)
        let start = buffer.writerIndex
        writePayload(&buffer)
        buffer.setInteger(UInt32(truncatingIfNeeded: buffer.writerIndex - start), at: lengthIndex, endianness: .big)
    }

    /// Appends `payload` to `buffer` as one frame (4-byte big-endian length + bytes).
    public static func writeFrame<Bytes: Collection>(_ payload: Bytes, into buffer: inout ByteBuffer)
    where Bytes.Element == UInt8 {
        writeFrame(into: &buffer) { $0.writeBytes(payload) }
    }

    public static func frame(_ payload: String, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: payload.utf8.count + headerSize)
        writeFrame(payload.utf8, into: &buffer)
        return buffer
    }
}

/// Splits a byte stream into VTP payloads. Bytes may arrive split at any position.
public struct VTPFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer
    public let maximumFrameSize: Int

    public init(maximumFrameSize: Int = VTPFraming.defaultMaximumFrameSize) {
        self.maximumFrameSize = maximumFrameSize
    }

    /// Pure form of one decoding step, shared by the NIO decoder and offline
    /// reassembly (captures): returns the next payload, nil if more bytes are needed.
    public static func nextFrame(from buffer: inout ByteBuffer, maximumFrameSize: Int) throws -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else {
            return nil
        }
        if length == 0 { throw VTPFramingError.zeroLengthFrame }
        if UInt64(length) > UInt64(maximumFrameSize) {
            throw VTPFramingError.frameTooLarge(length: length, maximum: maximumFrameSize)
        }
        guard buffer.readableBytes >= VTPFraming.headerSize + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: VTPFraming.headerSize)
        return buffer.readSlice(length: Int(length))
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Self.nextFrame(from: &buffer, maximumFrameSize: maximumFrameSize) else {
            return .needMoreData
        }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        try Self.rejectLeftover(&buffer)
        return .needMoreData
    }

    /// At the end of the stream, bytes short of a whole frame are a truncated frame.
    static func rejectLeftover(_ buffer: inout ByteBuffer) throws {
        guard buffer.readableBytes > 0 else { return }
        let expected = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self)
            .map { Int($0) + VTPFraming.headerSize } ?? VTPFraming.headerSize
        let received = buffer.readableBytes
        buffer.moveReaderIndex(forwardBy: received)
        throw VTPFramingError.truncatedFrame(expectedBytes: expected, receivedBytes: received)
    }
}

/// The same decoder stepped by a connection handler itself (`NIOSingleStepByteToMessageProcessor`),
/// without a `ByteToMessageHandler` in the pipeline: one handler context and one pass per read
/// fewer, which counts on vtp-sender's per-event connections (a pipeline per event).
extension VTPFrameDecoder: NIOSingleStepByteToMessageDecoder {
    public mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
        try Self.nextFrame(from: &buffer, maximumFrameSize: maximumFrameSize)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
        if let frame = try decode(buffer: &buffer) { return frame }
        try Self.rejectLeftover(&buffer)
        return nil
    }
}

/// Prefixes each outbound payload with its length.
public struct VTPFrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = ByteBuffer
    public init() {}

    public func encode(data: ByteBuffer, out: inout ByteBuffer) throws {
        guard data.readableBytes > 0 else { throw VTPFramingError.zeroLengthFrame }
        guard data.readableBytes <= Int(UInt32.max) else {
            throw VTPFramingError.payloadTooLarge(bytes: data.readableBytes)
        }
        VTPFraming.writeFrame(into: &out) { $0.writeImmutableBuffer(data) }
    }
}
