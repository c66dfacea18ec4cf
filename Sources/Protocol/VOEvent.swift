/// Builds schema-valid, unique VOEvent 2.0 test events for the benchmark.
///
/// Each event carries its sequence number, the sender's run id and the moment it was
/// scheduled (nanoseconds since the epoch) as `What/Param`s, and is padded to a
/// requested size. The ivorn is `<local IVO>#<run id>-<sequence>`: Comet requires a
/// `#local_ID` and naks any payload it has seen before, so run id + sequence keep
/// every event unique across runs.
public struct TestEventBuilder: Sendable {
    public static let voeventNamespace = "http://www.ivoa.net/xml/VOEvent/v2.0"
    public static let sequenceParam = "seq"
    public static let sentNanosParam = "sent_ns"
    public static let runParam = "run"
    public static let paddingParam = "padding"

    public let localIVO: String
    public let runID: String
    public let eventSize: Int

    public init(localIVO: String, runID: String = TestEventBuilder.makeRunID(), eventSize: Int) {
        self.localIVO = localIVO
        self.runID = runID
        self.eventSize = eventSize
    }

    /// 12 hex digits of randomness: enough that two runs never share an ivorn.
    public static func makeRunID() -> String {
        var generator = SystemRandomNumberGenerator()
        let value = generator.next() & 0xFFFF_FFFF_FFFF
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 12 - hex.count) + hex
    }

    public func ivorn(sequence: UInt64) -> String { "\(localIVO)#\(runID)-\(sequence)" }

    /// The UTF-8 bytes of one event document, at least `eventSize` bytes long
    /// (exactly, unless the unpadded document is already bigger).
    public func document(sequence: UInt64, sentNanos: Int64) -> String {
        let ivorn = XMLEscaping.escape(ivorn(sequence: sequence))
        let author = XMLEscaping.escape(localIVO)
        let head = """
            <?xml version="1.0" encoding="UTF-8"?>
            <voe:VOEvent xmlns:voe="\(Self.voeventNamespace)" \
            xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
            xsi:schemaLocation="http://www.ivoa.net/xml/VOEvent/v2.0 http://www.ivoa.net/xml/VOEvent/VOEvent-v2.0.xsd" \
            version="2.0" role="test" ivorn="\(ivorn)">
            <Who><AuthorIVORN>\(author)</AuthorIVORN><Date>\(ISO8601Time.formatMicroseconds(nanos: sentNanos))</Date></Who>
            <What><Param name="\(Self.sequenceParam)" value="\(sequence)"/>\
            <Param name="\(Self.sentNanosParam)" value="\(sentNanos)"/>\
            <Param name="\(Self.runParam)" value="\(XMLEscaping.escape(runID))"/>
            """
        let paddingOpen = "<Param name=\"\(Self.paddingParam)\" value=\""
        let tail = "\"/></What>\n</voe:VOEvent>\n"
        let fixedLength = head.utf8.count + paddingOpen.utf8.count + tail.utf8.count
        let fill = max(0, eventSize - fixedLength)
        return head + paddingOpen + String(repeating: "x", count: fill) + tail
    }
}

/// What the benchmark needs from a received VOEvent.
public struct VOEventSummary: Sendable, Equatable {
    public var ivorn: String
    public var role: String
    public var authorIVORN: String?
    public var date: String?
    public var params: [String: String]

    public var sequence: UInt64? { params[TestEventBuilder.sequenceParam].flatMap { UInt64($0) } }
    public var runID: String? { params[TestEventBuilder.runParam] }

    /// The send timestamp: `sent_ns` if present (nanoseconds), else `Who/Date`
    /// (microseconds at best), so events from other authors can still be timed.
    public func sendTimestampNanos() throws -> Int64 {
        if let raw = params[TestEventBuilder.sentNanosParam] {
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
