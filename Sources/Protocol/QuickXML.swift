#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

import NIOCore

/// A fast reader for the plain XML that VTP peers send (acks, naks, iamalive: ASCII elements and
/// attributes, no entities, comments, CDATA, DOCTYPE or processing instructions). For a document
/// in that subset it returns exactly the tree `SafeXMLParser.parse` gives; for anything else
/// (including every malformed document) it returns nil and the caller uses `SafeXMLParser`, which
/// also reports the error. It never accepts what libxml2 would refuse: it checks well-formedness
/// of the subset (nesting, quoting, duplicate attributes, namespace prefixes in scope) itself.
///
/// Why: libxml2 spends ~100k instructions on a 500-byte ack (input buffering and encoding
/// conversion), 60% of the sender's CPU per event; this reads one in a few thousand.
public enum QuickXML {
    /// Deeper or wider documents are left to libxml2 (VTP messages nest 3 levels).
    public static let maximumDepth = 16
    public static let maximumAttributesPerElement = 32
    /// Every name is looked up among the declarations in scope: few, as in SafeXMLParser.
    public static let maximumNamespacesInScope = 16

    /// The declarations accepted (what Comet, lxml and vtpbench write); any other goes to libxml2.
    private static let declarations: [[UInt8]] = [
        "<?xml version='1.0' encoding='UTF-8'?>", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
        "<?xml version='1.0' encoding='utf-8'?>", "<?xml version=\"1.0\" encoding=\"utf-8\"?>",
        "<?xml version='1.0'?>", "<?xml version=\"1.0\"?>",
    ].map { Array($0.utf8) }

    public static func parse(_ bytes: UnsafeRawBufferPointer) -> XMLElement? {
        guard !bytes.isEmpty, isPlainASCII(bytes) else { return nil }
        var reader = Reader(bytes: bytes)
        if reader.starts(with: Array("<?".utf8)) {
            guard let declaration = declarations.first(where: { reader.starts(with: $0) }) else { return nil }
            reader.position += declaration.count
        }
        reader.skipSpace()
        var scope: [Binding] = []
        guard let root = reader.element(depth: 0, scope: &scope) else { return nil }
        reader.skipSpace()
        return reader.atEnd ? root : nil
    }

    /// Tab, LF, space and printable ASCII only, without `&` (entities) or CR (line-end
    /// normalisation): the subset's characters mean themselves.
    static func isPlainASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        // Eight bytes at a time; a word with a control character (LF, tab), `&` or DEL is checked
        // byte by byte.
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        func hasZeroByte(_ v: UInt64) -> Bool { (v &- ones) & ~v & highs != 0 }
        var offset = 0
        while offset + 8 <= bytes.count {
            let word = base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            if word & highs != 0 { return false }
            if (word &- ones &* 0x20) & ~word & highs != 0 || hasZeroByte(word ^ (ones &* 0x26))
                || hasZeroByte(word ^ (ones &* 0x7F))
            {
                for index in offset..<offset + 8 where !isPlain(bytes[index]) { return false }
            }
            offset += 8
        }
        for index in offset..<bytes.count where !isPlain(bytes[index]) { return false }
        return true
    }

    private static func isPlain(_ byte: UInt8) -> Bool {
        (byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "&")) || byte == 0x09 || byte == 0x0A
    }

    /// A name in the document: `prefix:local` or `local`, as byte ranges.
    private struct Name {
        var whole: Range<Int>
        /// The prefix, without its colon (nil: no prefix).
        var prefix: Range<Int>?
        var local: Range<Int>
    }

    private struct Attribute {
        var name: Name
        var value: Range<Int>
    }

    /// A namespace declaration in scope: the prefix it binds (nil: the default namespace) and
    /// the URI (nil: the default namespace undeclared).
    private struct Binding {
        var prefix: Range<Int>?
        var uri: String?
    }

    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var position = 0

        var atEnd: Bool { position >= bytes.count }
        var current: UInt8? { position < bytes.count ? bytes[position] : nil }

        func starts(with prefix: [UInt8]) -> Bool {
            guard bytes.count - position >= prefix.count else { return false }
            for (offset, byte) in prefix.enumerated() where bytes[position + offset] != byte { return false }
            return true
        }

        @discardableResult
        mutating func skipSpace() -> Bool {
            let start = position
            while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A { position += 1 }
            return position > start
        }

        /// The position of the next `byte` from here (memchr), or nil.
        func find(_ byte: UInt8) -> Int? {
            guard let base = bytes.baseAddress, position < bytes.count else { return nil }
            guard let found = memchr(base + position, Int32(byte), bytes.count - position) else { return nil }
            return base.distance(to: UnsafeRawPointer(found))
        }

        mutating func take(_ byte: UInt8) -> Bool {
            guard current == byte else { return false }
            position += 1
            return true
        }

        func text(_ range: Range<Int>) -> String {
            String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        }

        func same(_ a: Range<Int>, _ b: Range<Int>) -> Bool {
            guard a.count == b.count else { return false }
            for offset in 0..<a.count where bytes[a.lowerBound + offset] != bytes[b.lowerBound + offset] { return false }
            return true
        }

        func same(_ a: Range<Int>, _ literal: StaticString) -> Bool {
            guard a.count == literal.utf8CodeUnitCount else { return false }
            let pointer = literal.utf8Start
            for offset in 0..<a.count where bytes[a.lowerBound + offset] != pointer[offset] { return false }
            return true
        }

        func same(_ a: Range<Int>?, _ b: Range<Int>?) -> Bool {
            switch (a, b) {
            case (nil, nil): return true
            case (let a?, let b?): return same(a, b)
            default: return false
            }
        }

        /// The URI bound to `prefix` (nil prefix: the default namespace); `.none` when the prefix
        /// is not declared (outside the subset), `.some(nil)` for no namespace.
        func lookup(_ prefix: Range<Int>?, in scope: [Binding]) -> String?? {
            for binding in scope.reversed() where same(binding.prefix, prefix) { return .some(binding.uri) }
            return prefix == nil ? .some(nil) : nil
        }

        /// A name `[A-Za-z_][A-Za-z0-9_.-]*`, optionally `prefix:local` of two such.
        mutating func name() -> Name? {
            let start = position
            var colon: Int?
            guard let first = current, isNameStart(first) else { return nil }
            position += 1
            while let byte = current {
                if byte == UInt8(ascii: ":") {
                    guard colon == nil else { return nil }
                    colon = position
                    position += 1
                    guard let next = current, isNameStart(next) else { return nil }
                    position += 1
                } else if isNameStart(byte) || (byte >= 0x30 && byte <= 0x39) || byte == 0x2E || byte == 0x2D {
                    position += 1
                } else {
                    break
                }
            }
            guard let colon else { return Name(whole: start..<position, prefix: nil, local: start..<position) }
            return Name(whole: start..<position, prefix: start..<colon, local: colon + 1..<position)
        }

        private func isNameStart(_ byte: UInt8) -> Bool {
            (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z") || byte == UInt8(ascii: "_")
        }

        /// The element starting at `<` here, with its content and end tag; nil when it is outside
        /// the subset (or malformed).
        mutating func element(depth: Int, scope: inout [Binding]) -> XMLElement? {
            guard depth < QuickXML.maximumDepth, take(UInt8(ascii: "<")), let tag = name() else { return nil }
            // Attributes, raw: namespaces are resolved once all declarations of the tag are read.
            var attributes: [Attribute] = []
            var empty = false
            while true {
                let spaced = skipSpace()
                if take(UInt8(ascii: ">")) { break }
                if take(UInt8(ascii: "/")) {
                    guard take(UInt8(ascii: ">")) else { return nil }
                    empty = true
                    break
                }
                guard spaced, attributes.count < QuickXML.maximumAttributesPerElement, let attribute = name() else {
                    return nil
                }
                skipSpace()
                guard take(UInt8(ascii: "=")) else { return nil }
                skipSpace()
                guard let quote = current, quote == UInt8(ascii: "\"") || quote == UInt8(ascii: "'") else { return nil }
                position += 1
                let valueStart = position
                guard let valueEnd = find(quote) else { return nil }
                position = valueEnd + 1
                // `<` is an error; tab and LF would be normalised to spaces: both left to libxml2.
                for index in valueStart..<valueEnd {
                    let byte = bytes[index]
                    if byte == UInt8(ascii: "<") || byte == 0x09 || byte == 0x0A { return nil }
                }
                // Duplicates (also by local name: two prefixes may name one namespace) go to libxml2.
                for other in attributes where same(other.name.whole, attribute.whole) || same(other.name.local, attribute.local) {
                    return nil
                }
                attributes.append(Attribute(name: attribute, value: valueStart..<(position - 1)))
            }
            // Declarations first, then names resolved in the new scope.
            let outer = scope.count
            defer { scope.removeSubrange(outer...) }
            var declarations = 0
            for attribute in attributes {
                if attribute.name.prefix == nil, same(attribute.name.local, "xmlns") {
                    scope.append(Binding(prefix: nil, uri: attribute.value.isEmpty ? nil : text(attribute.value)))
                    declarations += 1
                } else if let prefix = attribute.name.prefix, same(prefix, "xmlns") {
                    // Undeclaring a prefix or rebinding xml/xmlns is an error: libxml2's to report.
                    guard !attribute.value.isEmpty, !same(attribute.name.local, "xml"), !same(attribute.name.local, "xmlns")
                    else { return nil }
                    scope.append(Binding(prefix: attribute.name.local, uri: text(attribute.value)))
                    declarations += 1
                }
            }
            guard scope.count <= QuickXML.maximumNamespacesInScope else { return nil }
            if let prefix = tag.prefix, same(prefix, "xml") || same(prefix, "xmlns") { return nil }
            guard case .some(let uri) = lookup(tag.prefix, in: scope) else { return nil }
            var element = XMLElement(name: text(tag.local), namespaceURI: uri)
            if attributes.count > declarations {
                for attribute in attributes {
                    if let prefix = attribute.name.prefix {
                        if same(prefix, "xmlns") { continue }
                        // A prefixed attribute needs its prefix in scope; unprefixed ones are in no namespace.
                        guard !same(prefix, "xml"), lookup(prefix, in: scope) != nil else { return nil }
                    } else if same(attribute.name.local, "xmlns") {
                        continue
                    }
                    element.attributes[text(attribute.name.local)] = text(attribute.value)
                }
            }
            guard !empty else { return element }
            // Content: text and child elements up to the matching end tag.
            while true {
                let textStart = position
                guard let textEnd = find(UInt8(ascii: "<")) else { return nil }
                position = textEnd
                if textEnd > textStart {
                    // `]]>` may not appear in text.
                    var index = textStart + 2
                    while index < textEnd {
                        if bytes[index] == UInt8(ascii: ">"), bytes[index - 1] == UInt8(ascii: "]"),
                            bytes[index - 2] == UInt8(ascii: "]")
                        {
                            return nil
                        }
                        index += 1
                    }
                    element.text += text(textStart..<textEnd)
                }
                let next = position + 1 < bytes.count ? bytes[position + 1] : 0
                if next == UInt8(ascii: "/") {
                    position += 2
                    guard let end = name(), same(end.whole, tag.whole) else { return nil }
                    skipSpace()
                    return take(UInt8(ascii: ">")) ? element : nil
                }
                if next == UInt8(ascii: "!") || next == UInt8(ascii: "?") { return nil }  // comments, CDATA, PIs
                guard let child = self.element(depth: depth + 1, scope: &scope) else { return nil }
                element.children.append(child)
            }
        }
    }
}

extension VTPMessage {
    /// `parse(_:)`, reading vtpbench's own events and acks by their exact layout (`PlainShapes`),
    /// other plain documents (Comet's acks) with `QuickXML` and anything else, including every
    /// malformed one, with libxml2: the same result either way, far fewer instructions for the
    /// plain ones.
    public static func parsePlainFirst(_ payload: ByteBuffer) throws -> VTPMessage {
        if let message = payload.withUnsafeReadableBytes({ PlainShapes.read($0) }) { return message }
        if let element = payload.withUnsafeReadableBytes({ QuickXML.parse($0) }) { return try parse(element) }
        return try parse(payload)
    }
}
