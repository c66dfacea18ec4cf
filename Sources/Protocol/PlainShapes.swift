#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

import NIOCore

/// Reads the two documents that make up nearly all vtpbench traffic — the event
/// `TestEventBuilder` writes and the ack `TransportMessage.xml` writes — straight from the bytes,
/// without building an XML tree. It accepts only their exact layout (constant parts byte for
/// byte, variable parts restricted to characters that mean themselves in XML) and returns nil for
/// anything else, which the caller reads with `QuickXML`/libxml2 as before; so what it accepts it
/// reads exactly as the tree path does, and every malformed document keeps today's treatment.
///
/// Why: reading a 1 KB event through a tree took ~72k instructions and an ack ~33k, the largest
/// single costs per event on both sides.
public enum PlainShapes {
    /// The message, if `bytes` is one of the two shapes and reads without error; nil otherwise.
    public static func read(_ bytes: UnsafeRawBufferPointer) -> VTPMessage? {
        guard let base = bytes.baseAddress, bytes.count > eventHead.count else { return nil }
        var scanner = Scanner(base: base.assumingMemoryBound(to: UInt8.self), count: bytes.count)
        if scanner.literal(eventHead) { return event(&scanner).map(VTPMessage.voEvent) }
        if scanner.literal(transportHead) { return transport(&scanner).map(VTPMessage.transport) }
        return nil
    }

    // The constant parts, as TestEventBuilder and TransportMessage.xml write them.
    private static let eventHead = Array("""
        <?xml version="1.0" encoding="UTF-8"?>
        <voe:VOEvent xmlns:voe="\(BenchEventSchema.voeventNamespace)" \
        xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
        xsi:schemaLocation="http://www.ivoa.net/xml/VOEvent/v2.0 http://www.ivoa.net/xml/VOEvent/VOEvent-v2.0.xsd" \
        version="2.0" role="
        """.utf8)
    private static let transportHead = Array("""
        <?xml version='1.0' encoding='UTF-8'?>
        <trn:Transport xmlns:trn="\(TransportMessage.namespace)" \
        xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
        xsi:schemaLocation="http://telescope-networks.org/schema/Transport/v1.1 http://www.telescope-networks.org/schema/Transport-v1.1.xsd" \
        version="
        """.utf8)

    private static func event(_ s: inout Scanner) -> VOEventSummary? {
        guard let role = s.attribute(), s.literal("\" ivorn=\""), let ivorn = s.attribute(), !ivorn.isEmpty,
            s.literal("\">\n<Who><AuthorIVORN>"), let author = s.text(), s.literal("</AuthorIVORN><Date>"),
            let date = s.text(), s.literal("</Date></Who>\n<What>")
        else { return nil }
        var params: [String: String] = [:]
        while true {
            _ = s.literal("\n")
            guard s.literal("<Param name=\"") else { break }
            guard let name = s.attribute(), s.literal("\" value=\""), let value = s.attribute(), s.literal("\"/>")
            else { return nil }
            params[s.string(name)] = s.string(value)
        }
        guard s.literal("</What>\n</voe:VOEvent>\n"), s.atEnd else { return nil }
        return VOEventSummary(
            ivorn: s.string(ivorn), role: s.string(role), authorIVORN: s.string(author), date: s.string(date),
            params: params)
    }

    private static func transport(_ s: inout Scanner) -> TransportMessage? {
        guard let version = s.attribute(), s.literal("\" role=\""), let rawRole = s.attribute(),
            let role = TransportMessage.Role(rawValue: s.string(rawRole)), s.literal("\">\n<Origin>"),
            let origin = s.text(), !origin.isEmpty, s.literal("</Origin>\n")
        else { return nil }
        var response: String?
        if s.literal("<Response>") {
            guard let value = s.text(), s.literal("</Response>\n") else { return nil }
            response = s.string(value)
        }
        guard s.literal("<TimeStamp>"), let rawTimestamp = s.text(), s.literal("</TimeStamp>\n") else { return nil }
        let timestamp = s.string(rawTimestamp)
        guard ISO8601Time.parseNanos(timestamp) != nil else { return nil }
        var params: [TransportMessage.Param] = []
        params.reserveCapacity(2)  // the receiver's two
        if s.literal("<Meta>") {
            while s.literal("<Param name=\"") {
                guard let name = s.attribute(), s.literal("\" value=\""), let value = s.attribute(), s.literal("\"/>")
                else { return nil }
                params.append(.init(name: s.string(name), value: s.string(value)))
            }
            // A Result (a nak's reason) is left to the tree path.
            guard s.literal("</Meta>\n") else { return nil }
        }
        guard s.literal("</trn:Transport>\n"), s.atEnd else { return nil }
        return TransportMessage(
            role: role, origin: s.string(origin), response: response, timestamp: timestamp, params: params,
            version: s.string(version))
    }

    /// Walks the document: every byte is matched by a constant part or checked by `attribute()`
    /// or `text()`.
    private struct Scanner {
        let base: UnsafePointer<UInt8>
        let count: Int
        var position = 0

        var atEnd: Bool { position == count }

        mutating func literal(_ bytes: [UInt8]) -> Bool {
            bytes.withUnsafeBufferPointer { literal($0.baseAddress!, $0.count) }
        }

        mutating func literal(_ text: StaticString) -> Bool { literal(text.utf8Start, text.utf8CodeUnitCount) }

        private mutating func literal(_ start: UnsafePointer<UInt8>, _ length: Int) -> Bool {
            guard count - position >= length, memcmp(base + position, start, length) == 0 else { return false }
            position += length
            return true
        }

        /// A double-quoted attribute value up to its closing quote (left unread): printable ASCII
        /// without `&` (entities) or `<`; tab, LF and CR, which XML would normalise, excluded too.
        mutating func attribute() -> Range<Int>? {
            let start = position
            guard let end = find(UInt8(ascii: "\""), from: start) else { return nil }
            if end - start <= 32 {
                for index in start..<end {
                    let byte = base[index]
                    guard byte >= 0x20, byte < 0x7F, byte != UInt8(ascii: "&"), byte != UInt8(ascii: "<") else { return nil }
                }
            } else {
                // Long values (the padding): eight bytes at a time, then the three QuickXML allows.
                guard QuickXML.isPlainASCII(UnsafeRawBufferPointer(start: base + start, count: end - start)) else { return nil }
                for byte in [UInt8(ascii: "<"), 0x09, 0x0A] where find(byte, from: start, to: end) != nil { return nil }
            }
            position = end
            return start..<end
        }

        /// Element text up to the next `<` (left unread): printable ASCII without white space, so
        /// it is its own trimmed text, and without `&` (entities) or `>` (so no `]]>`).
        mutating func text() -> Range<Int>? {
            let start = position
            while position < count {
                let byte = base[position]
                if byte == UInt8(ascii: "<") { return start..<position }
                guard byte > 0x20, byte < 0x7F, byte != UInt8(ascii: "&"), byte != UInt8(ascii: ">") else { return nil }
                position += 1
            }
            return nil
        }

        private func find(_ byte: UInt8, from start: Int, to end: Int? = nil) -> Int? {
            let end = end ?? count
            guard start < end, let found = memchr(base + start, Int32(byte), end - start) else { return nil }
            return UnsafeRawPointer(base).distance(to: UnsafeRawPointer(found))
        }

        func string(_ range: Range<Int>) -> String {
            String(decoding: UnsafeBufferPointer(start: base + range.lowerBound, count: range.count), as: UTF8.self)
        }
    }
}

/// Writes the receiver's ack (with its `received_ns`/`replied_ns` Params) from a byte template:
/// exactly the frame `TransportMessage.ack(...).framed()` gives, without building it as a String
/// (that was ~26k instructions per ack).
public struct AckWriter: Sendable {
    private let head: [UInt8]
    private let beforeTimestamp: [UInt8]
    private static let beforeReceived = Array(
        "</TimeStamp>\n<Meta><Param name=\"\(TransportMessage.receivedNanosParam)\" value=\"".utf8)
    private static let beforeReplied = Array("\"/><Param name=\"\(TransportMessage.repliedNanosParam)\" value=\"".utf8)
    private static let tail = Array("\"/></Meta>\n</trn:Transport>\n".utf8)

    public init(localIVO: String?) {
        // The parts of TransportMessage.xml around Origin and TimeStamp, for an ack.
        let sample = TransportMessage(role: .ack, origin: "\u{1}", response: localIVO, timestamp: "\u{2}").xml
        let bytes = Array(sample.utf8)
        // Origin comes before Response (the local IVO, which may hold anything), TimeStamp after it.
        let origin = bytes.firstIndex(of: 1)!
        let timestamp = bytes.lastIndex(of: 2)!
        head = Array(bytes[..<origin])
        beforeTimestamp = Array(bytes[(origin + 1)..<timestamp])
    }

    /// Appends the ack of `eventIVORN` as one frame.
    public func writeFramedAck(eventIVORN: String, receivedNanos: Int64, repliedNanos: Int64, into buffer: inout ByteBuffer) {
        let origin = XMLEscaping.escape(eventIVORN)
        let bound = head.count + origin.utf8.count + beforeTimestamp.count + ISO8601Time.formattedLength(microseconds: false)
            + Self.beforeReceived.count + Self.beforeReplied.count + Self.tail.count + 2 * RawWriter.decimalBound
        RawWriter.writeFrame(into: &buffer, bound: bound) { writer in
            writer.bytes(head)
            writer.string(origin)
            writer.bytes(beforeTimestamp)
            writer.timestamp(nanos: repliedNanos, microseconds: false)
            writer.bytes(Self.beforeReceived)
            writer.decimal(receivedNanos)
            writer.bytes(Self.beforeReplied)
            writer.decimal(repliedNanos)
            writer.bytes(Self.tail)
        }
    }
}
