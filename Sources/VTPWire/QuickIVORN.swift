import NIOCore

/// Finds the `ivorn` attribute of a `<VOEvent ...>` root tag without parsing the document.
/// Returns nil whenever the text is not the plain, common shape (entity references in the
/// value, no VOEvent root, ...): callers then fall back to a full parse.
enum QuickIVORN {
    static func scan(_ payload: ByteBuffer) -> String? {
        payload.withUnsafeReadableBytes { bytes -> String? in
            let n = min(bytes.count, 8192)
            var i = 0
            // Skip the XML declaration, comments and processing instructions before the root.
            while i < n {
                guard bytes[i] == UInt8(ascii: "<") else {
                    i += 1
                    continue
                }
                guard i + 1 < n else { return nil }
                let next = bytes[i + 1]
                if next == UInt8(ascii: "?") || next == UInt8(ascii: "!") {
                    i += 2
                    while i < n && bytes[i] != UInt8(ascii: ">") { i += 1 }
                    continue
                }
                break
            }
            guard i < n else { return nil }
            // Root tag name (with an optional prefix) must end in "VOEvent".
            var nameEnd = i + 1
            while nameEnd < n && !isSpace(bytes[nameEnd]) && bytes[nameEnd] != UInt8(ascii: ">") { nameEnd += 1 }
            let tagName = Array(bytes[(i + 1)..<nameEnd])
            guard tagName.count >= 7, Array(tagName.suffix(7)) == Array("VOEvent".utf8) else { return nil }
            guard tagName.count == 7 || tagName[tagName.count - 8] == UInt8(ascii: ":") else { return nil }
            // Attributes up to the end of the tag.
            var j = nameEnd
            let key = Array("ivorn".utf8)
            while j < n && bytes[j] != UInt8(ascii: ">") {
                if j + 5 < n, isSpace(bytes[j - 1]), Array(bytes[j..<(j + 5)]) == key {
                    var k = j + 5
                    while k < n && isSpace(bytes[k]) { k += 1 }
                    guard k < n, bytes[k] == UInt8(ascii: "=") else {
                        j += 1
                        continue
                    }
                    k += 1
                    while k < n && isSpace(bytes[k]) { k += 1 }
                    guard k < n, bytes[k] == UInt8(ascii: "\"") || bytes[k] == UInt8(ascii: "'") else { return nil }
                    let quote = bytes[k]
                    let start = k + 1
                    var end = start
                    while end < n && bytes[end] != quote {
                        if bytes[end] == UInt8(ascii: "&") || bytes[end] == UInt8(ascii: "<") { return nil }
                        end += 1
                    }
                    guard end < n, end > start else { return nil }
                    return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
                }
                j += 1
            }
            return nil
        }
    }

    @inline(__always) static func isSpace(_ b: UInt8) -> Bool {
        b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D
    }
}
