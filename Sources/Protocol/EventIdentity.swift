extension TestEventBuilder {
    /// The sequence number of one of this builder's events from its ivorn (`ivorn(sequence:)`
    /// read back), or nil for any other ivorn: senders and broadcasters match acks to events by it.
    public func sequence(ofIVORN ivorn: String) -> UInt64? {
        var ivorn = ivorn
        return ivorn.withUTF8 { bytes in
            let prefix = ivornPrefixBytes
            guard bytes.count > prefix.count, bytes.count - prefix.count <= 20 else { return nil }
            for index in prefix.indices where bytes[index] != prefix[index] { return nil }
            // Exactly as written: decimal digits, no sign, no leading zeros.
            let digits = UnsafeBufferPointer(rebasing: bytes[prefix.count...])
            guard digits.count == 1 || digits[0] != UInt8(ascii: "0") else { return nil }
            var value: UInt64 = 0
            for digit in digits {
                guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else { return nil }
                let (times10, overflow) = value.multipliedReportingOverflow(by: 10)
                let (sum, carry) = times10.addingReportingOverflow(UInt64(digit - UInt8(ascii: "0")))
                guard !overflow, !carry else { return nil }
                value = sum
            }
            return value
        }
    }
}
