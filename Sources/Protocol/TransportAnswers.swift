extension TransportMessage {
    /// The answer a peer owes this `iamalive` or `authenticate`: a copy (same role, same Origin)
    /// carrying the answerer's IVO as Response and a fresh TimeStamp, as Comet's subscriber
    /// answers its broker. Meta is left out: no filters are asked for. Nil for ack and nak,
    /// which are answers themselves.
    public func answer(from localIVO: String, nowNanos: Int64 = WallClock.nowNanos()) -> TransportMessage? {
        switch role {
        case .iamalive, .authenticate:
            return TransportMessage(
                role: role, origin: origin, response: localIVO, timestamp: ISO8601Time.formatSeconds(nanos: nowNanos),
                version: version)
        case .ack, .nak:
            return nil
        }
    }
}
