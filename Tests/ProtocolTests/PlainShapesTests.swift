import NIOCore
import Protocol
import XCTest

/// PlainShapes (vtpbench's own events and acks read by their layout) must read what it accepts
/// exactly as libxml2's tree path does, and leave everything else to it; AckWriter must write the
/// very bytes `TransportMessage.ack(...).framed()` does.
final class PlainShapesTests: XCTestCase {
    private func payload(_ text: String) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        return buffer
    }

    private func shape(_ bytes: [UInt8]) -> VTPMessage? { bytes.withUnsafeBytes { PlainShapes.read($0) } }

    private enum Outcome: Equatable {
        case message(VTPMessage)
        case error(String)
    }

    private func outcome(_ body: () throws -> VTPMessage) -> Outcome {
        do { return .message(try body()) } catch { return .error("\(error)") }
    }

    private var events: [String] {
        var out: [String] = []
        for (ivo, run) in [("ivo://vtpbench.test/sender", "0123456789ab"), ("ivo://a.test/s", "r")] {
            for size in [0, 300, 1024] {
                let builder = TestEventBuilder(localIVO: ivo, runID: run, eventSize: size)
                for (sequence, sent) in [(0, Int64(0)), (7, 1_764_000_000_123_456_789), (123_456, -5_000_000_001)] {
                    for offset in [nil, (offsetNanos: Int64(-42), errorNanos: Int64(17))] {
                        var buffer = ByteBufferAllocator().buffer(capacity: 1200)
                        builder.writeFramedDocument(
                            sequence: UInt64(sequence), sentNanos: sent, clockOffset: offset, into: &buffer)
                        buffer.moveReaderIndex(forwardBy: VTPFraming.headerSize)
                        out.append(String(buffer: buffer))
                    }
                }
            }
        }
        return out
    }

    private var transports: [String] {
        let t0: Int64 = 1_764_000_000_000_000_000
        let ack = TransportMessage.ack(
            eventIVORN: "ivo://vtpbench.test/sender#run-7", localIVO: "ivo://vtpbench.test/receiver", nowNanos: t0,
            params: [.init(name: TransportMessage.receivedNanosParam, value: "17"), .init(name: TransportMessage.repliedNanosParam, value: "18")])
        let iamalive = TransportMessage.iamalive(localIVO: "ivo://x.test/r", nowNanos: t0)
        return [
            ack.xml, TransportMessage.ack(eventIVORN: "ivo://x.test/s#1", localIVO: nil, nowNanos: t0).xml, iamalive.xml,
            iamalive.answer(from: "ivo://y.test/sub", nowNanos: t0)!.xml,
            TransportMessage.authenticate(localIVO: "ivo://x.test/r", nowNanos: t0).xml,
            TransportMessage(role: .ack, origin: "o", timestamp: "2026-01-01T00:00:00Z", params: [.init(name: "a b", value: "")]).xml,
        ]
    }

    func testVtpbenchEventsAndAcksReadAsTheTreePathReadsThem() throws {
        for text in events + transports {
            let fast = try XCTUnwrap(shape(Array(text.utf8)), "not read by its layout: \(text)")
            XCTAssertEqual(fast, try VTPMessage.parse(payload(text)), text)
        }
        // A nak's Result, escaped text, other layouts: left to the tree path.
        let nak = TransportMessage.nak(eventIVORN: "ivo://x.test/s#1", localIVO: "ivo://x.test/r", reason: "no")
        let escaped = TransportMessage.ack(eventIVORN: "ivo://x.test/s#a&b", localIVO: nil)
        let escapedEvent = TestEventBuilder(localIVO: "ivo://a.test/s'q>", eventSize: 0).document(sequence: 1, sentNanos: 0)
        for text in [nak.xml, escaped.xml, escapedEvent, events[0].replacingOccurrences(of: "\n<Who>", with: "<Who>")] {
            XCTAssertNil(shape(Array(text.utf8)), text)
            XCTAssertEqual(outcome { try VTPMessage.parsePlainFirst(payload(text)) }, outcome { try VTPMessage.parse(payload(text)) })
        }
    }

    func testMutationsAreReadAsTheTreePathReadsThemOrLeftToIt() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("<>/=\"' :ax!?&]\n\t-\r0Z#".utf8) + [0x80, 0x00]
        let samples = [events[1], events[3], events[13]] + transports
        var accepted = 0
        var checked = 0
        for sample in samples {
            for bytes in Mutations.of(Array(sample.utf8), count: 1500, alphabet: alphabet, using: &generator) {
                checked += 1
                var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
                buffer.writeBytes(bytes)
                let slow = outcome { try VTPMessage.parse(buffer) }
                // The receiver's and sender's path gives libxml2's answer, error or not.
                XCTAssertEqual(outcome { try VTPMessage.parsePlainFirst(buffer) }, slow, String(decoding: bytes, as: UTF8.self))
                guard let fast = shape(bytes) else { continue }
                accepted += 1
                XCTAssertEqual(.message(fast), slow, "differs from libxml2: \(String(decoding: bytes, as: UTF8.self))")
            }
        }
        // Changes to the padding, values and text stay in the layout (~5 % of all).
        XCTAssertGreaterThan(accepted, checked / 50, "\(accepted) of \(checked)")
    }

    func testEveryPositionWithEachSpecialByteIsReadAsTheTreePathReadsItOrLeftToIt() {
        let specials: [UInt8] = [0x00, 0x09, 0x0A, 0x0D, 0x20, 0x26, 0x3C, 0x3E, 0x22, 0x27, 0x5D, 0x7F, 0x80, 0xC3]
        var accepted = 0
        for sample in [events[1], transports[0], transports[3]] {
            let original = Array(sample.utf8)
            for position in original.indices {
                for byte in specials {
                    var bytes = original
                    bytes[position] = byte
                    guard let fast = shape(bytes) else { continue }
                    accepted += 1
                    var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
                    buffer.writeBytes(bytes)
                    XCTAssertEqual(.message(fast), outcome { try VTPMessage.parse(buffer) }, String(decoding: bytes, as: UTF8.self))
                }
            }
        }
        XCTAssertGreaterThan(accepted, 100, "spaces, quotes and brackets in the padding and values stay in the layout")
    }

    func testEveryByteValueAtEveryWordPositionIsClassifiedExactly() {
        // The plain-character check runs eight bytes at a time: each byte value in each lane.
        let text = Array("<a>0123456789abcdefghij</a>".utf8)
        for position in 3..<19 {
            for value in 0...255 {
                var bytes = text
                bytes[position] = UInt8(value)
                let plain = (0x20..<0x7F).contains(value) && value != 0x26 && value != 0x3C || value == 0x09 || value == 0x0A
                XCTAssertEqual(bytes.withUnsafeBytes { QuickXML.parse($0) } != nil, plain, "byte \(value) at \(position)")
            }
        }
    }

    func testAckWriterWritesTheBytesOfTheAckMessage() {
        for localIVO in ["ivo://vtpbench.test/receiver", "ivo://r.test/a&b<'\">", "ivo://r.test/\u{1}\u{2}", nil] {
            let writer = AckWriter(localIVO: localIVO)
            for ivorn in ["ivo://vtpbench.test/sender#0123456789ab-1", "ivo://s.test/x#a&b<c>'\"", "é"] {
                for (received, replied) in [(Int64(0), Int64(1)), (-1, 1_764_000_000_999_999_999), (Int64.max, -86_400_000_000_001)] {
                    var written = ByteBufferAllocator().buffer(capacity: 0)
                    writer.writeFramedAck(eventIVORN: ivorn, receivedNanos: received, repliedNanos: replied, into: &written)
                    let expected = TransportMessage.ack(
                        eventIVORN: ivorn, localIVO: localIVO, nowNanos: replied,
                        params: [
                            .init(name: TransportMessage.receivedNanosParam, value: String(received)),
                            .init(name: TransportMessage.repliedNanosParam, value: String(replied)),
                        ]
                    ).framed()
                    XCTAssertEqual(Array(written.readableBytesView), Array(expected.readableBytesView), ivorn)
                }
            }
        }
    }
}
