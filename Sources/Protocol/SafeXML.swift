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

    /// Assigns as the subscript does (a repeated name keeps its first position and takes
    /// the last value), in linear time overall: past a few attributes, `positions`
    /// indexes them, since an element may carry `SafeXMLParser.maximumAttributesPerElement`.
    @inline(__always)
    mutating func assign(_ name: String, _ value: String, positions: inout [String: Int]?) {
        if positions == nil {
            guard pairs.count >= 8 else {
                self[name] = value
                return
            }
            var index = [String: Int](minimumCapacity: 2 * pairs.count)
            for (position, pair) in pairs.enumerated() { index[pair.name] = position }
            positions = index
        }
        if let position = positions?[name] {
            pairs[position].value = value
        } else {
            positions?[name] = pairs.count
            pairs.append((name, value))
        }
    }

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
    /// An element with more attributes (namespace declarations included) than `limit`.
    case tooManyAttributes(limit: Int)
    /// More namespace declarations in scope at once than `limit`.
    case tooManyNamespaces(limit: Int)

    public var description: String {
        switch self {
        case .empty: return "empty XML document"
        case .malformed(let line, let message): return "malformed XML (line \(line)): \(message)"
        case .doctypeNotAllowed: return "XML document type declarations (DTD) are not accepted"
        case .nestingTooDeep(let limit): return "XML nested deeper than \(limit) elements"
        case .tooManyAttributes(let limit): return "XML element has more than \(limit) attributes"
        case .tooManyNamespaces(let limit): return "XML declares more than \(limit) namespaces in scope at once"
        }
    }
}

/// libxml2 with every dangerous feature off: no network (NONET), no entity
/// substitution (no NOENT), no DTD loading or default attributes, UTF-8 only, and
/// any DOCTYPE rejected before libxml2 sees it.
public enum SafeXMLParser {
    public static let maximumDepth = 64
    /// libxml2 (2.9) checks each attribute of an element against all earlier ones and
    /// appends it by walking the element's attribute list: n attributes cost O(n²), and
    /// 90,000 on one element held an event loop for 34 s. VOEvent elements carry a handful.
    public static let maximumAttributesPerElement = 256
    /// Each prefixed name is resolved by a linear search of the namespaces in scope, so
    /// thousands of nested declarations make every name slow (60 levels of 200: 4 s for
    /// 1 MB). VOEvent and Transport documents declare two or three.
    public static let maximumNamespacesInScope = 64

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
        try MarkupScan.checkAttributeCounts(
            bytes, perElement: maximumAttributesPerElement, namespaces: maximumNamespacesInScope)
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
        var positions: [String: Int]?
        var attribute = node.pointee.properties
        while let attr = attribute {
            if let name = string(attr.pointee.name) {
                if let child = attr.pointee.children, child.pointee.next == nil, child.pointee.type == XML_TEXT_NODE {
                    // The usual case: one text node, read in place without libxml2's copy.
                    element.attributes.assign(name, string(child.pointee.content) ?? "", positions: &positions)
                } else if let value = xmlNodeListGetString(node.pointee.doc, attr.pointee.children, 1) {
                    element.attributes.assign(name, String(cString: value), positions: &positions)
                    vtp_xml_free(value)
                } else {
                    element.attributes.assign(name, "", positions: &positions)
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

/// One pass over the raw document before libxml2 parses it, counting what libxml2
/// handles in quadratic time. Linear: text, comments, CDATA, processing instructions and
/// quoted values are skipped with memchr, so a normal event costs one memchr sweep.
/// The counts are exact for well-formed XML (inside a start tag and outside quotes, each
/// `=` follows an attribute name); on malformed XML they may be off, which only decides
/// whether this or libxml2's error is reported.
private enum MarkupScan {
    // `>` is the highest byte with a meaning inside a tag; every byte above it is part of a name.
    private static let lt = UInt8(ascii: "<"), gt = UInt8(ascii: ">"), equals = UInt8(ascii: "=")
    private static let slash = UInt8(ascii: "/"), colon = UInt8(ascii: ":")
    private static let quote = UInt8(ascii: "\""), apostrophe = UInt8(ascii: "'")
    private static let commentOpen = Array("!--".utf8), commentClose = Array("-->".utf8)
    private static let cdataOpen = Array("![CDATA[".utf8), cdataClose = Array("]]>".utf8)
    private static let piClose = Array("?>".utf8), xmlns = Array("xmlns".utf8)

    static func checkAttributeCounts(_ bytes: UnsafeRawBufferPointer, perElement: Int, namespaces: Int) throws {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        let end = bytes.count
        /// Index of the next `byte` at or after `start`.
        func next(_ byte: UInt8, from start: Int) -> Int? {
            guard start < end, let hit = memchr(base + start, Int32(byte), end - start) else { return nil }
            return UnsafeRawPointer(base).distance(to: UnsafeRawPointer(hit))
        }
        // Every attribute and declaration needs an `=`: with no more of them in the whole
        // document than the lower limit, nothing can exceed either. Counting them with
        // memchr (stopping past the limit) lets an ordinary event skip the scan below:
        // ~700 instructions instead of ~5,000 for a 1 KB event.
        var equalsSigns = 0
        var cursor = 0
        let fewest = min(perElement, namespaces)
        while equalsSigns <= fewest, let sign = next(equals, from: cursor) {
            equalsSigns += 1
            cursor = sign + 1
        }
        if equalsSigns <= fewest { return }

        func matches(_ pattern: [UInt8], at index: Int) -> Bool {
            end - index >= pattern.count && memcmp(base + index, pattern, pattern.count) == 0
        }
        /// Index just past the next `pattern` at or after `start`.
        func skip(past pattern: [UInt8], from start: Int) -> Int? {
            var cursor = start
            while let candidate = next(pattern[0], from: cursor) {
                if matches(pattern, at: candidate) { return candidate + pattern.count }
                cursor = candidate + 1
            }
            return nil
        }
        /// `xmlns` or `xmlns:prefix` starting at `index`.
        func isNamespaceDeclaration(at index: Int) -> Bool {
            guard base[index] == xmlns[0], matches(xmlns, at: index) else { return false }
            let after = index + xmlns.count
            guard after < end else { return false }
            let b = base[after]
            return b == colon || b == equals || b == 32 || b == 9 || b == 10 || b == 13
        }

        // Open elements that declare namespaces (depth, how many): what is in scope.
        var declaring: [(depth: Int, count: Int)] = []
        var depth = 0
        var inScope = 0
        var i = 0
        while let open = next(lt, from: i) {
            i = open + 1
            guard i < end else { return }
            switch base[i] {
            case UInt8(ascii: "!"):
                let close =
                    matches(commentOpen, at: i) ? skip(past: commentClose, from: i + commentOpen.count)
                    : matches(cdataOpen, at: i) ? skip(past: cdataClose, from: i + cdataOpen.count)
                    : next(gt, from: i).map { $0 + 1 }
                guard let close else { return }
                i = close
            case UInt8(ascii: "?"):
                guard let close = skip(past: piClose, from: i + 1) else { return }
                i = close
            case slash:  // an end tag closes the innermost element's scope
                guard let close = next(gt, from: i) else { return }
                i = close + 1
                if let innermost = declaring.last, innermost.depth == depth {
                    declaring.removeLast()
                    inScope -= innermost.count
                }
                depth -= 1
            default:  // a start tag
                var attributes = 0
                var declarations = 0
                var nameStart = i  // start of the last name token: the attribute's, at `=`
                var betweenTokens = false
                tag: while i < end {
                    let b = base[i]
                    if b > gt {
                        // Letters, `_`, non-ASCII: most of a tag's bytes, so skipped in a tight loop.
                        if betweenTokens {
                            nameStart = i
                            betweenTokens = false
                        }
                        i += 1
                        while i < end && base[i] > gt { i += 1 }
                        continue
                    }
                    switch b {
                    case quote, apostrophe:
                        guard let close = next(b, from: i + 1) else { return }
                        i = close + 1
                        betweenTokens = true
                    case equals:
                        attributes += 1
                        if attributes > perElement { throw XMLParseError.tooManyAttributes(limit: perElement) }
                        if isNamespaceDeclaration(at: nameStart) {
                            declarations += 1
                            if inScope + declarations > namespaces {
                                throw XMLParseError.tooManyNamespaces(limit: namespaces)
                            }
                        }
                        i += 1
                    case gt:
                        if base[i - 1] != slash {  // not self-closing: its declarations stay in scope
                            depth += 1
                            if declarations > 0 {
                                declaring.append((depth, declarations))
                                inScope += declarations
                            }
                        }
                        i += 1
                        break tag
                    case lt:
                        break tag  // malformed: libxml2 will say so; the outer loop resumes here
                    case 32, 9, 10, 13:
                        betweenTokens = true
                        i += 1
                    default:  // digits, `:`, `-`, `.`, `/`
                        if betweenTokens {
                            nameStart = i
                            betweenTokens = false
                        }
                        i += 1
                    }
                }
            }
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
