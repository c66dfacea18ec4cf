import NIOCore
import PGWire
import ProxyCore

/// The PostgreSQL decoders as the proxy and the sniffer drive them: incrementally, bytes split
/// at any position. The same bytes decoded whole and split at random points must give the same
/// messages and the same verdict, and every decoded message must survive re-encoding.
enum PGWireTargets {
    static func frontend(_ bytes: UnsafeRawBufferPointer) {
        var input = SplitInput(bytes)
        // The server's answer to an encryption request, for the whole input: refused or accepted.
        let accepted = input.splits.next() & 1 == 1
        check(input, decode: { decodeFrontend(bytes, chunks: $0, accepted: accepted) }, roundTrip: roundTrip)
        // vtp-proxy --protocol pg on the same client stream: its startup handling and query log.
        var proxy = PGClientInspector()
        FuzzCheck.inspect(&proxy, input)
    }

    static func backend(_ bytes: UnsafeRawBufferPointer) {
        var input = SplitInput(bytes)
        // Whether the client sent SSLRequest or GSSENCRequest first (or nothing).
        let request: PGEncryptionRequest? = [nil, .ssl, .gss][Int(input.splits.next() % 3)]
        check(input, decode: { decodeBackend(bytes, chunks: $0, request: request) }, roundTrip: roundTrip)
        var proxy = PGServerInspector()
        FuzzCheck.inspect(&proxy, input)
    }

    /// Whole and split decode alike; every message survives re-encoding.
    static func check<Message: Equatable>(
        _ input: SplitInput, decode: ([Int]) -> Outcome<Message>, roundTrip: (Message) -> Void
    ) {
        let whole = decode([input.bytes.count])
        compare(whole, decode(input.sizes))
        for message in whole.messages { roundTrip(message) }
    }

    struct Outcome<Message: Equatable> {
        var messages: [Message] = []
        var error: PGWireError?
        var leftover = 0
    }

    static func decodeFrontend(
        _ bytes: UnsafeRawBufferPointer, chunks: [Int], accepted: Bool
    ) -> Outcome<PGFrontendMessage> {
        var decoder = PGFrontendDecoder()
        return decode(bytes, chunks: chunks) { buffer in
            let message = try decoder.next(from: &buffer)
            if case .awaitingEncryptionResponse = decoder.state { decoder.encryptionResponse(accepted: accepted) }
            return message
        } finish: { buffer in
            try decoder.finish(remaining: buffer)
        }
    }

    static func decodeBackend(
        _ bytes: UnsafeRawBufferPointer, chunks: [Int], request: PGEncryptionRequest?
    ) -> Outcome<PGBackendMessage> {
        var decoder = PGBackendDecoder()
        if let request { decoder.expectEncryptionResponse(request) }
        return decode(bytes, chunks: chunks) { buffer in
            try decoder.next(from: &buffer)
        } finish: { buffer in
            try decoder.finish(remaining: buffer)
        }
    }

    static func decode<Message: Equatable>(
        _ bytes: UnsafeRawBufferPointer, chunks: [Int], next: (inout ByteBuffer) throws -> Message?,
        finish: (ByteBuffer) throws -> Void
    ) -> Outcome<Message> {
        var outcome = Outcome<Message>()
        var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
        var offset = 0
        do {
            for size in chunks {
                buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + size)]))
                offset += size
                while let message = try next(&buffer) { outcome.messages.append(message) }
            }
            try finish(buffer)
        } catch let error as PGWireError {
            outcome.error = error
        } catch {
            FuzzCheck.expect(false, "a decoder threw something other than PGWireError: \(error)")
        }
        outcome.leftover = buffer.readableBytes
        return outcome
    }

    static func compare<Message: Equatable>(_ whole: Outcome<Message>, _ split: Outcome<Message>) {
        FuzzCheck.expect(
            whole.messages == split.messages,
            "split reads decode differently: \(whole.messages.count) vs \(split.messages.count) messages")
        FuzzCheck.expect(
            (whole.error == nil) == (split.error == nil) && sameKind(whole.error, split.error),
            "split reads end differently: \(String(describing: whole.error)) vs \(String(describing: split.error))")
    }

    /// Errors that count bytes already buffered (data after the end, after an encryption
    /// request) legitimately differ in their counts between whole and split reads.
    static func sameKind(_ a: PGWireError?, _ b: PGWireError?) -> Bool {
        switch (a?.code, b?.code) {
        case (.dataAfterEndOfStream?, .dataAfterEndOfStream?), (.dataAfterEncryptionRequest?, .dataAfterEncryptionRequest?):
            return true
        default:
            return a == b
        }
    }

    static func roundTrip(_ message: PGFrontendMessage) {
        var buffer = PGEncoding.bytes(message)
        let decoded: PGFrontendMessage?
        switch message {
        case .startup, .sslRequest, .gssEncRequest, .cancelRequest:
            var decoder = PGFrontendDecoder()
            decoded = try? decoder.next(from: &buffer)
        default:
            decoded = (try? PGFraming.nextTypedMessage(from: &buffer)).flatMap { $0 }.flatMap { try? PGFrontendDecoder.decode($0) }
        }
        FuzzCheck.expect(decoded == message, "re-encoding changes \(message) into \(String(describing: decoded))")
    }

    static func roundTrip(_ message: PGBackendMessage) {
        if case .encryptionResponse = message { return }  // one untyped byte, not a message
        var buffer = PGEncoding.bytes(message)
        let decoded = (try? PGFraming.nextTypedMessage(from: &buffer)).flatMap { $0 }.flatMap { try? PGBackendDecoder.decode($0) }
        FuzzCheck.expect(decoded == message, "re-encoding changes \(message) into \(String(describing: decoded))")
    }
}
