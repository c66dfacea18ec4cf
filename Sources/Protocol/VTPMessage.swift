import NIOCore

/// Why a VTP payload was refused. Each case reads as a nak reason.
public enum VTPMessageError: Error, Equatable, CustomStringConvertible {
    case xml(XMLParseError)
    case unexpectedRoot(String)
    case missingAttribute(element: String, attribute: String)
    case missingElement(String)
    case unknownRole(String)
    case missingTimestamp
    case invalidTimestamp(field: String, value: String)

    public var description: String {
        switch self {
        case .xml(let error): return error.description
        case .unexpectedRoot(let name):
            return "root element <\(name)> is neither VOEvent nor Transport"
        case .missingAttribute(let element, let attribute):
            return "\(element) has no \(attribute) attribute"
        case .missingElement(let path): return "missing element \(path)"
        case .unknownRole(let role): return "unknown Transport role \"\(role)\""
        case .missingTimestamp: return "message carries no timestamp"
        case .invalidTimestamp(let field, let value): return "\(field) is not a valid timestamp: \"\(value)\""
        }
    }
}

/// One VTP payload: a VOEvent or a Transport message.
public enum VTPMessage: Sendable, Equatable {
    case voEvent(VOEventSummary)
    case transport(TransportMessage)

    public static func parse(_ payload: ByteBuffer) throws -> VTPMessage {
        let element: XMLElement
        do {
            element = try payload.withUnsafeReadableBytes { try SafeXMLParser.parse($0) }
        } catch let error as XMLParseError {
            throw VTPMessageError.xml(error)
        }
        return try parse(element)
    }

    public static func parse(_ text: String) throws -> VTPMessage {
        var buffer = ByteBufferAllocator().buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        return try parse(buffer)
    }

    public static func parse(_ element: XMLElement) throws -> VTPMessage {
        switch element.name {
        case "VOEvent": return .voEvent(try VOEventSummary(element: element))
        case "Transport": return .transport(try TransportMessage(element: element))
        default: throw VTPMessageError.unexpectedRoot(element.name)
        }
    }
}
