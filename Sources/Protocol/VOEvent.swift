import NIOCore

/// The benchmark's event schema: the `What/Param` names the builder writes and the parser reads.
public enum BenchEventSchema {
    public static let voeventNamespace = "http://www.ivoa.net/xml/VOEvent/v2.0"
    public enum Param {
        public static let sequence = "seq"
        public static let sentNanos = "sent_ns"
        public static let run = "run"
        public static let padding = "padding"
        /// The sender's current clock-offset estimate (receiver − sender) and its error bound, ns.
        public static let clockOffset = "clock_offset_ns"
        public static let clockError = "clock_error_ns"
    }
}

/// Builds schema-valid, unique VOEvent 2.0 test events for the benchmark.
///
/// Each event carries its sequence number, the sender's run id and the moment it was
/// scheduled (nanoseconds since the epoch) as `What/Param`s, and is padded to a
/// requested size. The ivorn is `<local IVO>#<run id>-<sequence>`: Comet requires a
/// `#local_ID` and naks any payload it has seen before, so run id + sequence keep
/// every event unique across runs.
public struct TestEventBuilder: Sendable {
    private typealias Param = BenchEventSchema.Param

    public let localIVO: String
    public let runID: String
    public let eventSize: Int
    // The document's constant parts, precomputed: building an event is on the hot path.
    private let beforeSequence: [UInt8]
    private let beforeDate: [UInt8]
    private let beforeSequenceParam: [UInt8]
    private let beforeSentNanos: [UInt8]
    private let beforeOptionalParams: [UInt8]
    private static let paddingOpen = Array("\n<Param name=\"\(Param.padding)\" value=\"".utf8)
    private static let tail = Array("\"/></What>\n</voe:VOEvent>\n".utf8)
    private static let clockOffsetOpen = Array("<Param name=\"\(Param.clockOffset)\" value=\"".utf8)
    private static let clockErrorOpen = Array("\"/><Param name=\"\(Param.clockError)\" value=\"".utf8)
    private static let paramClose = Array("\"/>".utf8)
    /// `ivorn(sequence:)` without the sequence, so an ivorn is one concatenation.
    private let ivornPrefix: String
    let ivornPrefixBytes: [UInt8]

    public init(localIVO: String, runID: String = TestEventBuilder.makeRunID(), eventSize: Int) {
        self.localIVO = localIVO
        self.runID = runID
        self.eventSize = eventSize
        ivornPrefix = "\(localIVO)#\(runID)-"
        ivornPrefixBytes = Array(ivornPrefix.utf8)
        let author = XMLEscaping.escape(localIVO)
        beforeSequence = Array("""
            <?xml version="1.0" encoding="UTF-8"?>
            <voe:VOEvent xmlns:voe="\(BenchEventSchema.voeventNamespace)" \
            xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
            xsi:schemaLocation="http://www.ivoa.net/xml/VOEvent/v2.0 http://www.ivoa.net/xml/VOEvent/VOEvent-v2.0.xsd" \
            version="2.0" role="test" ivorn="\(author)#\(XMLEscaping.escape(runID))-
            """.utf8)
        beforeDate = Array("\">\n<Who><AuthorIVORN>\(author)</AuthorIVORN><Date>".utf8)
        beforeSequenceParam = Array("</Date></Who>\n<What><Param name=\"\(Param.sequence)\" value=\"".utf8)
        beforeSentNanos = Array("\"/><Param name=\"\(Param.sentNanos)\" value=\"".utf8)
        beforeOptionalParams = Array("\"/><Param name=\"\(Param.run)\" value=\"\(XMLEscaping.escape(runID))\"/>".utf8)
    }

    /// 12 hex digits of randomness: enough that two runs never share an ivorn.
    public static func makeRunID() -> String {
        var generator = SystemRandomNumberGenerator()
        let value = generator.next() & 0xFFFF_FFFF_FFFF
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 12 - hex.count) + hex
    }

    public func ivorn(sequence: UInt64) -> String { ivornPrefix + String(sequence) }

    /// Appends the event as one VTP frame (length prefix + document), at least
    /// `eventSize` bytes of document (exactly, unless the unpadded one is bigger).
    public func writeFramedDocument(
        sequence: UInt64, sentNanos: Int64, clockOffset: (offsetNanos: Int64, errorNanos: Int64)? = nil,
        into buffer: inout ByteBuffer
    ) {
        // The document: the constant parts, three decimals, a date, optional clock Params, padding.
        var bound = beforeSequence.count + beforeDate.count + beforeSequenceParam.count + beforeSentNanos.count
            + beforeOptionalParams.count + Self.paddingOpen.count + Self.tail.count + max(0, eventSize)
            + 3 * RawWriter.decimalBound + ISO8601Time.formattedLength(microseconds: true)
        if clockOffset != nil {
            bound += Self.clockOffsetOpen.count + Self.clockErrorOpen.count + Self.paramClose.count + 2 * RawWriter.decimalBound
        }
        RawWriter.writeFrame(into: &buffer, bound: bound) { writer in
            writer.bytes(beforeSequence)
            writer.decimal(sequence)
            writer.bytes(beforeDate)
            writer.timestamp(nanos: sentNanos, microseconds: true)
            writer.bytes(beforeSequenceParam)
            writer.decimal(sequence)
            writer.bytes(beforeSentNanos)
            writer.decimal(sentNanos)
            writer.bytes(beforeOptionalParams)
            if let clockOffset {
                writer.bytes(Self.clockOffsetOpen)
                writer.decimal(clockOffset.offsetNanos)
                writer.bytes(Self.clockErrorOpen)
                writer.decimal(clockOffset.errorNanos)
                writer.bytes(Self.paramClose)
            }
            writer.bytes(Self.paddingOpen)
            writer.repeating(UInt8(ascii: "x"), count: eventSize - writer.count - Self.tail.count)
            writer.bytes(Self.tail)
        }
    }

    /// One event document as text.
    public func document(sequence: UInt64, sentNanos: Int64) -> String {
        var buffer = ByteBufferAllocator().buffer(capacity: max(eventSize, 700) + VTPFraming.headerSize)
        writeFramedDocument(sequence: sequence, sentNanos: sentNanos, into: &buffer)
        buffer.moveReaderIndex(forwardBy: VTPFraming.headerSize)
        return String(buffer: buffer)
    }
}

/// What the benchmark needs from a received VOEvent.
public struct VOEventSummary: Sendable, Equatable {
    public var ivorn: String
    public var role: String
    public var authorIVORN: String?
    public var date: String?
    public var params: [String: String]

    public var sequence: UInt64? { params[BenchEventSchema.Param.sequence].flatMap { UInt64($0) } }
    public var runID: String? { params[BenchEventSchema.Param.run] }
    /// The sender's clock-offset estimate carried by the event, if any.
    public var clockOffset: (offsetNanos: Int64, errorNanos: Int64)? {
        guard let offset = params[BenchEventSchema.Param.clockOffset].flatMap({ Int64($0) }),
            let error = params[BenchEventSchema.Param.clockError].flatMap({ Int64($0) })
        else { return nil }
        return (offset, error)
    }

    /// The send timestamp: `sent_ns` if present (nanoseconds), else `Who/Date`
    /// (microseconds at best), so events from other authors can still be timed.
    public func sendTimestampNanos() throws -> Int64 {
        if let raw = params[BenchEventSchema.Param.sentNanos] {
            guard let value = Int64(raw) else {
                throw VTPMessageError.invalidTimestamp(field: "What/Param[sent_ns]", value: raw)
            }
            return value
        }
        if let date {
            guard let value = ISO8601Time.parseNanos(date) else {
                throw VTPMessageError.invalidTimestamp(field: "Who/Date", value: date)
            }
            return value
        }
        throw VTPMessageError.missingTimestamp
    }

    init(ivorn: String, role: String, authorIVORN: String?, date: String?, params: [String: String]) {
        self.ivorn = ivorn
        self.role = role
        self.authorIVORN = authorIVORN
        self.date = date
        self.params = params
    }

    init(element: XMLElement) throws {
        guard let ivorn = element.attributes["ivorn"], !ivorn.isEmpty else {
            throw VTPMessageError.missingAttribute(element: "VOEvent", attribute: "ivorn")
        }
        guard let role = element.attributes["role"] else {
            throw VTPMessageError.missingAttribute(element: "VOEvent", attribute: "role")
        }
        self.ivorn = ivorn
        self.role = role
        let who = element.child("Who")
        authorIVORN = who?.child("AuthorIVORN")?.trimmedText
        date = who?.child("Date")?.trimmedText
        var params: [String: String] = [:]
        for what in element.children(named: "What") {
            for param in what.children(named: "Param") {
                if let name = param.attributes["name"] { params[name] = param.attributes["value"] ?? "" }
            }
        }
        self.params = params
    }
}
