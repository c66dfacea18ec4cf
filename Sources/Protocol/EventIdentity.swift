extension TestEventBuilder {
    /// The sequence number of one of this builder's events from its ivorn (`ivorn(sequence:)`
    /// read back), or nil for any other ivorn: a broadcaster matches acks to events by it.
    public func sequence(ofIVORN ivorn: String) -> UInt64? {
        let prefix = "\(localIVO)#\(runID)-"
        guard ivorn.hasPrefix(prefix) else { return nil }
        let digits = ivorn.dropFirst(prefix.count)
        // Exactly as written: no sign, no leading zeros.
        guard let sequence = UInt64(digits), String(sequence) == digits else { return nil }
        return sequence
    }
}
