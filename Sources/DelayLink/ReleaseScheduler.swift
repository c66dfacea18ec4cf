// The delay link's scheduling is NetworkEmulation's (shared with vtp-proxy, one meaning of
// delay, jitter, rate and order). Re-exported: `ReleaseScheduler`, `SplitMix64` and the
// profile are part of DelayLink's API (vtp-netem, the lab and the forwarder use them).
@_exported import NetworkEmulation

/// One direction of the delay link (packets: delay, jitter, loss, rate, queue limit).
public typealias DirectionProfile = LinkProfile

extension LinkProfile {
    /// Checks the values a user gave; the message names the direction and the setting.
    public func validate(direction: String) throws(DelayLinkError) {
        if let problem { throw .invalidSetting("\(direction): \(problem)") }
    }
}
