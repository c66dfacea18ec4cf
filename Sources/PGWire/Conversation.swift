import NIOCore

/// Both directions of one connection, as a sniffer or proxy sees them: the encryption
/// negotiation in one direction changes what the other direction's decoder expects.
public struct PGConversation: Sendable {
    public var frontend: PGFrontendDecoder
    public var backend: PGBackendDecoder

    public init(
        maximumStartupLength: Int = PGFraming.defaultMaximumStartupLength,
        maximumMessageLength: Int = PGFraming.defaultMaximumMessageLength
    ) {
        frontend = PGFrontendDecoder(
            maximumStartupLength: maximumStartupLength, maximumMessageLength: maximumMessageLength)
        backend = PGBackendDecoder(maximumMessageLength: maximumMessageLength)
    }

    public mutating func nextFromClient(_ buffer: inout ByteBuffer) throws -> PGFrontendMessage? {
        let message = try frontend.next(from: &buffer)
        switch message {
        case .sslRequest: backend.expectEncryptionResponse(.ssl)
        case .gssEncRequest: backend.expectEncryptionResponse(.gss)
        default: break
        }
        return message
    }

    public mutating func nextFromServer(_ buffer: inout ByteBuffer) throws -> PGBackendMessage? {
        let message = try backend.next(from: &buffer)
        if case .encryptionResponse(let accepted) = message { frontend.encryptionResponse(accepted: accepted) }
        return message
    }
}

/// NIO decoder for a server that reads client messages (or a test of one).
public struct PGFrontendMessageDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = PGFrontendMessage
    public var decoder: PGFrontendDecoder

    public init(_ decoder: PGFrontendDecoder = PGFrontendDecoder()) { self.decoder = decoder }

    public mutating func decode(buffer: inout ByteBuffer) throws -> PGFrontendMessage? {
        try decoder.next(from: &buffer)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> PGFrontendMessage? {
        if let message = try decode(buffer: &buffer) { return message }
        try decoder.finish(remaining: buffer)
        return nil
    }
}

/// NIO decoder for a client that reads server messages.
public struct PGBackendMessageDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = PGBackendMessage
    public var decoder: PGBackendDecoder

    public init(_ decoder: PGBackendDecoder = PGBackendDecoder()) { self.decoder = decoder }

    public mutating func decode(buffer: inout ByteBuffer) throws -> PGBackendMessage? {
        try decoder.next(from: &buffer)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> PGBackendMessage? {
        if let message = try decode(buffer: &buffer) { return message }
        try decoder.finish(remaining: buffer)
        return nil
    }
}
