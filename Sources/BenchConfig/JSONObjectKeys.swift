import Foundation

/// Finds repeated keys in a JSON object. JSONSerialization (and JSONDecoder) keep one
/// of two equal keys without a word, so config.json is also scanned for them.
enum JSONObjectKeys {
    /// The first key that appears twice in the top-level object of `data`, compared after
    /// unescaping (`"port"` equals `"po\u0072t"`). Expects text JSONSerialization has
    /// already accepted; anything unexpected (e.g. UTF-16) gives nil rather than a guess.
    static func firstDuplicate(in data: Data) -> String? {
        var scanner = Scanner(bytes: [UInt8](data))
        return scanner.firstDuplicateTopLevelKey()
    }

    private struct Scanner {
        let bytes: [UInt8]
        var i = 0

        init(bytes: [UInt8]) {
            self.bytes = bytes
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }  // UTF-8 byte order mark
        }

        mutating func firstDuplicateTopLevelKey() -> String? {
            skipSpace()
            guard peek == UInt8(ascii: "{") else { return nil }
            i += 1
            var seen = Set<String>()
            while true {
                skipSpace()
                guard peek == UInt8(ascii: "\"") else { return nil }  // `}` of an empty object, or malformed
                let start = i
                guard skipString() else { return nil }
                let key = Self.unescape(bytes[start..<i])
                if !seen.insert(key).inserted { return key }
                skipSpace()
                guard peek == UInt8(ascii: ":") else { return nil }
                i += 1
                skipSpace()
                guard skipValue() else { return nil }
                skipSpace()
                guard peek == UInt8(ascii: ",") else { return nil }  // `}`: the object ended
                i += 1
            }
        }

        private var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

        private mutating func skipSpace() {
            while let b = peek, b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D { i += 1 }
        }

        /// At a `"`: moves past the closing quote.
        private mutating func skipString() -> Bool {
            i += 1
            while let b = peek {
                i += 1
                if b == UInt8(ascii: "\\") {
                    i += 1  // the escaped character (a \u's hex digits need no care)
                } else if b == UInt8(ascii: "\"") {
                    return true
                }
            }
            return false
        }

        /// Skips one value of any kind, nested ones included.
        private mutating func skipValue() -> Bool {
            var depth = 0
            while let b = peek {
                switch b {
                case UInt8(ascii: "\""):
                    guard skipString() else { return false }
                    if depth == 0 { return true }
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    if depth == 0 { return true }  // end of the enclosing object
                    depth -= 1
                    if depth == 0 {
                        i += 1
                        return true
                    }
                case UInt8(ascii: ","):
                    if depth == 0 { return true }
                default:
                    break
                }
                i += 1
            }
            return depth == 0
        }

        private static func unescape(_ quoted: ArraySlice<UInt8>) -> String {
            let data = Data(quoted)
            if let s = try? JSONSerialization.jsonObject(with: data, options: .fragmentsAllowed) as? String { return s }
            return String(decoding: quoted.dropFirst().dropLast(), as: UTF8.self)
        }
    }
}
