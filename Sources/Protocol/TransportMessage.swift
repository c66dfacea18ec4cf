import NIOCore

/// A VTP Transport message (ack, nak, iamalive, authenticate).
///
/// Children are written in the schema's order — Origin, Response, TimeStamp, Meta —
/// in the namespace Comet and the original benchmark use.
public struct TransportMessage: Sendable, Equatable {
    public static let namespace = "http://www.telescope-networks.org/xml/Transport/v1.1"
    /// Meta/Param names vtp-receiver adds to its acks (wall-clock ns): when the event was
    /// received and when the ack was sent, for the sender's clock-offset estimate.
    public static let receivedNanosParam = "received_ns"
    public static let repliedNanosParam = "replied_ns"

    public enum Role: String, Sendable, CaseIterable {
        case ack, nak, iamalive, authenticate
    }

    public struct Param: Sendable, Equatable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public var role: Role
    public var version: String
    public var origin: String
    public var response: String?
    public var timestamp: String
    public var result: String?
    public var params: [Param]

    public init(
        role: Role, origin: String, response: String? = nil, timestamp: String, result: String? = nil,
        params: [Param] = [], version: String = "1.0"
    ) {
        self.role = role
        self.origin = origin
        self.response = response
        self.timestamp = timestamp
        self.result = result
        self.params = params
        self.version = version
    }

    public static func ack(
        eventIVORN: String, localIVO: String?, nowNanos: Int64 = WallClock.nowNanos(), params: [Param] = []
    ) -> Self {
        .init(
            role: .ack, origin: eventIVORN, response: localIVO, timestamp: ISO8601Time.formatSeconds(nanos: nowNanos),
            params: params)
    }

    /// The value of a Meta/Param as an integer, if present and numeric.
    public func integerParam(_ name: String) -> Int64? {
        params.first { $0.name == name }.flatMap { Int64($0.value) }
    }

    public static func nak(
        eventIVORN: String, localIVO: String?, reason: String, nowNanos: Int64 = WallClock.nowNanos()
    ) -> Self {
        .init(
            role: .nak, origin: eventIVORN, response: localIVO,
            timestamp: ISO8601Time.formatSeconds(nanos: nowNanos), result: reason)
    }

    public static func iamalive(localIVO: String, nowNanos: Int64 = WallClock.nowNanos()) -> Self {
        .init(role: .iamalive, origin: localIVO, timestamp: ISO8601Time.formatSeconds(nanos: nowNanos))
    }

    public static func authenticate(localIVO: String, nowNanos: Int64 = WallClock.nowNanos()) -> Self {
        .init(role: .authenticate, origin: localIVO, timestamp: ISO8601Time.formatSeconds(nanos: nowNanos))
    }

    public var xml: String {
        var out = """
            <?xml version='1.0' encoding='UTF-8'?>
            <trn:Transport xmlns:trn="\(Self.namespace)" \
            xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
            xsi:schemaLocation="http://telescope-networks.org/schema/Transport/v1.1 http://www.telescope-networks.org/schema/Transport-v1.1.xsd" \
            version="\(XMLEscaping.escape(version))" role="\(role.rawValue)">
            <Origin>\(XMLEscaping.escape(origin))</Origin>

            """
        if let response { out += "<Response>\(XMLEscaping.escape(response))</Response>\n" }
        out += "<TimeStamp>\(XMLEscaping.escape(timestamp))</TimeStamp>\n"
        if result != nil || !params.isEmpty {
            out += "<Meta>"
            for param in params {
                out += "<Param name=\"\(XMLEscaping.escape(param.name))\" value=\"\(XMLEscaping.escape(param.value))\"/>"
            }
            if let result { out += "<Result>\(XMLEscaping.escape(result))</Result>" }
            out += "</Meta>\n"
        }
        out += "</trn:Transport>\n"
        return out
    }

    /// The message as one VTP frame (length prefix included).
    public func framed(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        VTPFraming.frame(xml, allocator: allocator)
    }

    init(element: XMLElement) throws {
        guard let rawRole = element.attributes["role"] else {
            throw VTPMessageError.missingAttribute(element: "Transport", attribute: "role")
        }
        guard let role = Role(rawValue: rawRole) else { throw VTPMessageError.unknownRole(rawRole) }
        guard let origin = element.child("Origin")?.trimmedText, !origin.isEmpty else {
            throw VTPMessageError.missingElement("Transport/Origin")
        }
        guard let timestamp = element.child("TimeStamp")?.trimmedText, !timestamp.isEmpty else {
            throw VTPMessageError.missingTimestamp
        }
        guard ISO8601Time.parseNanos(timestamp) != nil else {
            throw VTPMessageError.invalidTimestamp(field: "Transport/TimeStamp", value: timestamp)
        }
        let meta = element.child("Meta")
        self.init(
            role: role, origin: origin, response: element.child("Response")?.trimmedText, timestamp: timestamp,
            result: meta?.child("Result")?.text,
            params: meta?.children(named: "Param").map {
                Param(name: $0.attributes["name"] ?? "", value: $0.attributes["value"] ?? "")
            } ?? [],
            version: element.attributes["version"] ?? "1.0")
    }
}
