import CLibXML2
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An element's attributes: a handful at most, so a small array beats hashing.
public struct XMLAttributes: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public private(set) var pairs: [(name: String, value: String)] = []

    public init(dictionaryLiteral elements: (String, String)...) {
        for (name, value) in elements { self[name] = value }
    }

    public subscript(name: String) -> String? {
        get { pairs.first { $0.name == name }?.value }
        set {
            if let index = pairs.firstIndex(where: { $0.name == name }) {
                if let newValue { pairs[index].value = newValue } else { pairs.remove(at: index) }
            } else if let newValue {
                pairs.append((name, newValue))
            }
        }
    }

    public var count: Int { pairs.count }

    public static func == (a: XMLAttributes, b: XMLAttributes) -> Bool {
        a.pairs.count == b.pairs.count && a.pairs.allSatisfy { b[$0.name] == $0.value }
    }
}

/// A parsed element: just what VTP needs, detached from libxml2's memory.
public struct XMLElement: Sendable, Equatable {
    public var name: String
    public var namespaceURI: String?
    public var attributes: XMLAttributes
    /// Concatenated text and CDATA directly inside this element.
    public var text: String
    public var children: [XMLElement]

    public init(
        name: String, namespaceURI: String? = nil, attributes: XMLAttributes = [:], text: String = "",
        children: [XMLElement] = []
    ) {
        self.name = name
        self.namespaceURI = namespaceURI
        self.attributes = attributes
        self.text = text
        self.children = children
    }

    public func child(_ name: String) -> XMLElement? { children.first { $0.name == name } }
    public func children(named name: String) -> [XMLElement] { children.filter { $0.name == name } }
    /// Text without leading/trailing XML white space (space, tab, CR, LF).
    public var trimmedText: String {
        let bytes = text.utf8
        func isSpace(_ b: UInt8) -> Bool { b == 32 || b == 9 || b == 10 || b == 13 }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }) else { return "" }
        let last = bytes.lastIndex(where: { !isSpace($0) })!
        if first == bytes.startIndex && last == bytes.index(before: bytes.endIndex) { return text }
        return String(text[first...last])
    }
}

public enum XMLParseError: Error, Equatable, CustomStringConvertible {
    case empty
    case malformed(line: Int, message: String)
    /// DTDs are refused outright: they are the vehicle for external entities,
    /// network fetches and entity-expansion bombs, and VTP never needs one.
    case doctypeNotAllowed
    case nestingTooDeep(limit: Int)

    public var description: String {
        switch self {
        case .empty: return "empty XML document"
        case .malformed(let line, let message): return "malformed XML (line \(line)): \(message)"
        case .doctypeNotAllowed: return "XML document type declarations (DTD) are not accepted"
        case .nestingTooDeep(let limit): return "XML nested deeper than \(limit) elements"
        }
    }
}

/// libxml2 with every dangerous feature off: no network (NONET), no entity
/// substitution (no NOENT), no DTD loading or default attributes, UTF-8 only, and
/// any DOCTYPE rejected before libxml2 sees it.
public enum SafeXMLParser {
    public static let maximumDepth = 64

    private static let initialise: Void = { xmlInitParser() }()
    private static let doctypeMarker = Array("<!DOCTYPE".utf8)

    public static func parse(_ bytes: [UInt8]) throws -> XMLElement {
        try bytes.withUnsafeBytes { try parse($0) }
    }

    public static func parse(_ string: String) throws -> XMLElement {
        try parse(Array(string.utf8))
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer) throws -> XMLElement {
        _ = initialise
        guard let base = bytes.baseAddress, bytes.count > 0 else { throw XMLParseError.empty }
        guard bytes.count < Int(Int32.max) else { throw XMLParseError.malformed(line: 0, message: "document too large") }
        if contains(doctypeMarker, in: bytes) { throw XMLParseError.doctypeNotAllowed }
        // Per thread in libxml2; cheap, so set on every call from whatever thread parses.
        vtp_xml_silence_generic_errors()

        guard let context = ParserContextCache.current() else {
            throw XMLParseError.malformed(line: 0, message: "libxml2 could not allocate a parser")
        }
        let options = Int32(
            XML_PARSE_NONET.rawValue | XML_PARSE_NOERROR.rawValue | XML_PARSE_NOWARNING.rawValue
                | XML_PARSE_NOCDATA.rawValue)
        guard
            let document = xmlCtxtReadMemory(
                context, base.assumingMemoryBound(to: CChar.self), Int32(bytes.count), nil, "UTF-8", options)
        else {
            let error = context.pointee.lastError
            let message = error.message.map { String(cString: $0) } ?? "unknown parse error"
            throw XMLParseError.malformed(
                line: Int(error.line), message: message.trimmingTrailingNewlines())
        }
        defer { xmlFreeDoc(document) }
        if document.pointee.intSubset != nil || document.pointee.extSubset != nil {
            throw XMLParseError.doctypeNotAllowed
        }
        guard let root = xmlDocGetRootElement(document) else { throw XMLParseError.empty }
        return try convert(root, depth: 0)
    }

    private static func convert(_ node: xmlNodePtr, depth: Int) throws -> XMLElement {
        guard depth < maximumDepth else { throw XMLParseError.nestingTooDeep(limit: maximumDepth) }
        var element = XMLElement(name: string(node.pointee.name) ?? "")
        if let ns = node.pointee.ns { element.namespaceURI = string(ns.pointee.href) }
        var attribute = node.pointee.properties
        while let attr = attribute {
            if let name = string(attr.pointee.name) {
                if let child = attr.pointee.children, child.pointee.next == nil, child.pointee.type == XML_TEXT_NODE {
                    // The usual case: one text node, read in place without libxml2's copy.
                    element.attributes[name] = string(child.pointee.content) ?? ""
                } else if let value = xmlNodeListGetString(node.pointee.doc, attr.pointee.children, 1) {
                    element.attributes[name] = String(cString: value)
                    vtp_xml_free(value)
                } else {
                    element.attributes[name] = ""
                }
            }
            attribute = attr.pointee.next
        }
        var child = node.pointee.children
        while let current = child {
            switch current.pointee.type {
            case XML_ELEMENT_NODE:
                element.children.append(try convert(current, depth: depth + 1))
            case XML_TEXT_NODE, XML_CDATA_SECTION_NODE:
                if let content = current.pointee.content { element.text += String(cString: content) }
            default:
                break  // comments, processing instructions, unexpanded entity references
            }
            child = current.pointee.next
        }
        return element
    }

    private static func string(_ pointer: UnsafePointer<xmlChar>?) -> String? {
        pointer.map { String(cString: $0) }
    }

    private static func contains(_ needle: [UInt8], in haystack: UnsafeRawBufferPointer) -> Bool {
        guard haystack.count >= needle.count, let base = haystack.baseAddress else { return false }
        // memchr (vectorised in libc) to each candidate first byte, then compare the rest.
        let end = base + haystack.count
        var cursor = base
        return needle.withUnsafeBytes { pattern in
            while end - cursor >= needle.count, let hit = memchr(cursor, Int32(needle[0]), end - cursor) {
                let candidate = UnsafeRawPointer(hit)
                if end - candidate < needle.count { return false }
                if memcmp(candidate, pattern.baseAddress!, needle.count) == 0 { return true }
                cursor = candidate + 1
            }
            return false
        }
    }
}

/// One libxml2 parser context per thread, reused: allocating a context costs more
/// than parsing a small document. `xmlCtxtReadMemory` resets it before each parse.
private enum ParserContextCache {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { pointer in
            #if canImport(Darwin)
            xmlFreeParserCtxt(pointer.assumingMemoryBound(to: xmlParserCtxt.self))
            #else
            if let pointer { xmlFreeParserCtxt(pointer.assumingMemoryBound(to: xmlParserCtxt.self)) }
            #endif
        }
        return key
    }()

    static func current() -> xmlParserCtxtPtr? {
        if let existing = pthread_getspecific(key) { return existing.assumingMemoryBound(to: xmlParserCtxt.self) }
        guard let context = xmlNewParserCtxt() else { return nil }
        pthread_setspecific(key, context)
        return context
    }
}

extension String {
    fileprivate func trimmingTrailingNewlines() -> String {
        var s = Substring(self)
        while let last = s.last, last.isNewline || last == " " { s.removeLast() }
        return String(s)
    }
}

/// Escapes text for use in XML content and attribute values.
public enum XMLEscaping {
    public static func escape(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == 38 || $0 == 60 || $0 == 62 || $0 == 34 || $0 == 39 }) else {
            return text
        }
        var out = ""
        out.reserveCapacity(text.utf8.count + 16)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(character)
            }
        }
        return out
    }
}
