import NIOCore
import NIOEmbedded
import NIOTestUtils
import Protocol
import XCTest

final class FramingTests: XCTestCase {
    private func framed(_ payloads: [String]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for p in payloads { VTPFraming.writeFrame(p.utf8, into: &buffer) }
        return buffer
    }

    func testDecoderVerifierAcceptsAnySplit() throws {
        let payloads = ["<a/>", String(repeating: "x", count: 300), "é<Transport/>"]
        let pairs: [(ByteBuffer, [ByteBuffer])] = payloads.map { p in
            (framed([p]), [ByteBuffer(string: p)])
        }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { VTPFrameDecoder() }
    }

    func testBytesSplitAtEveryPositionDecodeToTheSameFrames() throws {
        let payloads = ["<VOEvent/>", "second frame", String(repeating: "z", count: 70)]
        let all = framed(payloads)
        for cut in 1..<all.readableBytes {
            let channel = EmbeddedChannel(handler: ByteToMessageHandler(VTPFrameDecoder()))
            var copy = all
            let head = copy.readSlice(length: cut)!
            try channel.writeInbound(head)
            try channel.writeInbound(copy)
            var decoded: [String] = []
            while let frame = try channel.readInbound(as: ByteBuffer.self) { decoded.append(String(buffer: frame)) }
            XCTAssertEqual(decoded, payloads, "split at byte \(cut)")
            XCTAssertTrue(try channel.finish().isClean)
        }
    }

    /// The single-step form vtp-sender's connections use gives the same frames at every split,
    /// the same typed errors for an oversized frame and a truncated end, and whole frames left
    /// at the end still come out.
    func testSingleStepProcessorMatchesTheHandler() throws {
        let payloads = ["<VOEvent/>", "second frame", String(repeating: "z", count: 70)]
        let all = framed(payloads)
        for cut in 1..<all.readableBytes {
            var processor = NIOSingleStepByteToMessageProcessor(VTPFrameDecoder())
            var copy = all
            let head = copy.readSlice(length: cut)!
            var decoded: [String] = []
            try processor.process(buffer: head) { decoded.append(String(buffer: $0)) }
            try processor.process(buffer: copy) { decoded.append(String(buffer: $0)) }
            try processor.finishProcessing(seenEOF: true) { decoded.append(String(buffer: $0)) }
            XCTAssertEqual(decoded, payloads, "split at byte \(cut)")
        }

        var oversized = ByteBuffer()
        oversized.writeInteger(UInt32(100))
        var small = NIOSingleStepByteToMessageProcessor(VTPFrameDecoder(maximumFrameSize: 50))
        XCTAssertThrowsError(try small.process(buffer: oversized) { _ in XCTFail("no frame") }) { error in
            XCTAssertEqual(error as? VTPFramingError, .frameTooLarge(length: 100, maximum: 50))
        }

        var truncated = framed(["whole"])
        truncated.writeInteger(UInt32(10))
        truncated.writeString("abc")
        var processor = NIOSingleStepByteToMessageProcessor(VTPFrameDecoder())
        var decoded: [String] = []
        try processor.process(buffer: truncated) { decoded.append(String(buffer: $0)) }
        XCTAssertEqual(decoded, ["whole"])
        XCTAssertThrowsError(try processor.finishProcessing(seenEOF: true) { _ in XCTFail("no frame") }) { error in
            XCTAssertEqual(error as? VTPFramingError, .truncatedFrame(expectedBytes: 14, receivedBytes: 7))
        }
    }

    func testZeroLengthFrameIsATypedError() {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(VTPFrameDecoder()))
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(0))
        XCTAssertThrowsError(try channel.writeInbound(buffer)) { error in
            XCTAssertEqual(error as? VTPFramingError, .zeroLengthFrame)
        }
        _ = try? channel.finish()
    }

    func testOversizedLengthIsRejectedBeforeBuffering() {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(VTPFrameDecoder(maximumFrameSize: 1000)))
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(1001))
        buffer.writeString("abc")
        XCTAssertThrowsError(try channel.writeInbound(buffer)) { error in
            XCTAssertEqual(error as? VTPFramingError, .frameTooLarge(length: 1001, maximum: 1000))
        }
        _ = try? channel.finish()
    }

    func testLittleEndianPrefixIsReportedAsTooLarge() {
        // A 300-byte payload framed little-endian reads as 738,263,040 big-endian.
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(VTPFrameDecoder()))
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(300), endianness: .little)
        XCTAssertThrowsError(try channel.writeInbound(buffer)) { error in
            guard case .frameTooLarge(let length, _)? = error as? VTPFramingError else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertEqual(length, 738_263_040)
        }
        _ = try? channel.finish()
    }

    func testTruncatedFrameAtEOFIsATypedError() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(VTPFrameDecoder()))
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(10))
        buffer.writeString("abc")
        try channel.writeInbound(buffer)
        XCTAssertNil(try channel.readInbound(as: ByteBuffer.self))
        XCTAssertThrowsError(try channel.finish()) { error in
            XCTAssertEqual(error as? VTPFramingError, .truncatedFrame(expectedBytes: 14, receivedBytes: 7))
        }
    }

    func testCompleteFramesBeforeEOFAreStillDelivered() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(VTPFrameDecoder()))
        try channel.writeInbound(framed(["one", "two"]))
        XCTAssertEqual(try channel.readInbound(as: ByteBuffer.self).map { String(buffer: $0) }, "one")
        XCTAssertEqual(try channel.readInbound(as: ByteBuffer.self).map { String(buffer: $0) }, "two")
        XCTAssertTrue(try channel.finish().isClean)
    }

    func testEncoderPrefixesBigEndianLength() throws {
        let channel = EmbeddedChannel(handler: MessageToByteHandler(VTPFrameEncoder()))
        try channel.writeOutbound(ByteBuffer(string: "hello"))
        var out = try XCTUnwrap(channel.readOutbound(as: ByteBuffer.self))
        XCTAssertEqual(out.readInteger(endianness: .big, as: UInt32.self), 5)
        XCTAssertEqual(out.readString(length: 5), "hello")
        XCTAssertThrowsError(try channel.writeOutbound(ByteBuffer()))
        _ = try? channel.finish()
    }
}
