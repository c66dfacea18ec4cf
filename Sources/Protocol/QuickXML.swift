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
        var scope = NamespaceScope()
        guard let root = reader.element(depth: 0, scope: &scope) else { return nil }
        reader.skipSpace()
        return reader.atEnd ? root : nil
    }

    /// Tab, LF, space and printable ASCII only, without `&` (entities) or CR (line-end
    /// normalisation): the subset's characters mean themselves.
    private static func isPlainASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        for byte in bytes where !(byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "&")) && byte != 0x09 && byte != 0x0A {
            return false
        }
        return true
    }

    /// Prefix → namespace URI declarations in scope, innermost last (nil URI: no default).
    private struct NamespaceScope {
        var bindings: [(prefix: Substring?, uri: String?)] = []

        func lookup(_ prefix: Substring?) -> String?? {
            for binding in bindings.reversed() where binding.prefix == prefix { return .some(binding.uri) }
            return prefix == nil ? .some(nil) : nil  // an undeclared prefix: not in the subset
        }
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

        mutating func take(_ byte: UInt8) -> Bool {
            guard current == byte else { return false }
            position += 1
            return true
        }

        func text(_ range: Range<Int>) -> String {
            String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        }

        /// A name `[A-Za-z_][A-Za-z0-9_.-]*`, optionally `prefix:local` of two such.
        mutating func name() -> (qualified: Range<Int>, prefix: String?, local: String)? {
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
            guard let colon else { return (start..<position, nil, text(start..<position)) }
            return (start..<position, text(start..<colon), text(colon + 1..<position))
        }

        private func isNameStart(_ byte: UInt8) -> Bool {
            (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z") || byte == UInt8(ascii: "_")
        }

        func same(_ a: Range<Int>, _ b: Range<Int>) -> Bool {
            a.count == b.count && zip(a, b).allSatisfy { bytes[$0] == bytes[$1] }
        }

        /// The element starting at `<` here, with its content and end tag; nil when it is outside
        /// the subset (or malformed).
        mutating func element(depth: Int, scope: inout NamespaceScope) -> XMLElement? {
            guard depth < QuickXML.maximumDepth, take(UInt8(ascii: "<")), let tag = name() else { return nil }
            // Attributes, raw: namespaces are resolved once all declarations of the tag are read.
            var attributes: [(qualified: Range<Int>, prefix: String?, local: String, value: String)] = []
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
                // `<` is an error; tab and LF would be normalised to spaces: both left to libxml2.
                while let byte = current, byte != quote {
                    guard byte != UInt8(ascii: "<"), byte != 0x09, byte != 0x0A else { return nil }
                    position += 1
                }
                guard take(quote) else { return nil }
                let value = text(valueStart..<(position - 1))
                // Duplicates (also by local name: two prefixes may name one namespace) go to libxml2.
                guard !attributes.contains(where: { same($0.qualified, attribute.qualified) || $0.local == attribute.local })
                else { return nil }
                attributes.append((attribute.qualified, attribute.prefix, attribute.local, value))
            }
            // Declarations first, then names resolved in the new scope.
            let outer = scope.bindings.count
            defer { scope.bindings.removeSubrange(outer...) }
            for attribute in attributes {
                if attribute.prefix == nil, attribute.local == "xmlns" {
                    scope.bindings.append((nil, attribute.value.isEmpty ? nil : attribute.value))
                } else if attribute.prefix == "xmlns" {
                    // Undeclaring a prefix or rebinding xml/xmlns is an error: libxml2's to report.
                    guard !attribute.value.isEmpty, attribute.local != "xml", attribute.local != "xmlns" else { return nil }
                    scope.bindings.append((Substring(attribute.local), attribute.value))
                }
            }
            guard tag.prefix != "xml", tag.prefix != "xmlns", case .some(let uri) = scope.lookup(tag.prefix.map { Substring($0) })
            else { return nil }
            var element = XMLElement(name: tag.local, namespaceURI: uri)
            for attribute in attributes {
                if attribute.prefix == nil, attribute.local == "xmlns" { continue }
                if attribute.prefix == "xmlns" { continue }
                if let prefix = attribute.prefix {
                    // Unprefixed attributes are in no namespace; a prefixed one needs its prefix in scope.
                    guard prefix != "xml", scope.lookup(Substring(prefix)) != nil else { return nil }
                }
                element.attributes[attribute.local] = attribute.value
            }
            guard !empty else { return element }
            // Content: text and child elements up to the matching end tag.
            while true {
                let textStart = position
                while let byte = current, byte != UInt8(ascii: "<") {
                    // `]]>` may not appear in text.
                    if byte == UInt8(ascii: ">"), position - textStart >= 2, bytes[position - 1] == UInt8(ascii: "]"),
                        bytes[position - 2] == UInt8(ascii: "]")
                    {
                        return nil
                    }
                    position += 1
                }
                if position > textStart { element.text += text(textStart..<position) }
                guard !atEnd else { return nil }
                let next = position + 1 < bytes.count ? bytes[position + 1] : 0
                if next == UInt8(ascii: "/") {
                    position += 2
                    guard let end = name(), same(end.qualified, tag.qualified) else { return nil }
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
