/// Empty statistics are JSON `null`, never a row of zeros that reads like a measurement.
extension KeyedEncodingContainer {
    /// Encodes `value`, or `null` when `isEmpty`.
    public mutating func encode<T: Encodable>(_ value: T, nullIf isEmpty: Bool, forKey key: Key) throws {
        if isEmpty { try encodeNil(forKey: key) } else { try encode(value, forKey: key) }
    }
}

extension KeyedDecodingContainer {
    /// Decodes a value written by `encode(_:nullIf:forKey:)`: `null` (or a missing key) is `empty`.
    public func decode<T: Decodable>(_ type: T.Type, nullAs empty: T, forKey key: Key) throws -> T {
        try decodeIfPresent(type, forKey: key) ?? empty
    }
}
