/// `vtp-capture record`: packets from a live capture into a pcap file image, until a time limit,
/// a packet count or a stop request. Runs on the calling thread (it owns the capture).
public struct PcapRecording {
    public private(set) var writer: PcapFileWriter
    public private(set) var packets = 0
    /// pcap_stats at the end (nil when unreadable).
    public private(set) var statistics: CaptureStatistics?

    /// Records until `seconds` have passed, `packetLimit` packets were written or `shouldStop`
    /// returns true (checked every 100 ms), then closes the capture.
    public static func record(
        from capture: LiveCapture, seconds: Double, packetLimit: Int?, shouldStop: () -> Bool
    ) throws(LiveCaptureError) -> PcapRecording {
        // A DLT_RAW device is written as LINKTYPE_RAW, the value files use.
        let fileLinkType = capture.linkType == LinkType.rawDLT ? LinkType.raw : capture.linkType
        var recording = PcapRecording(writer: PcapFileWriter(linkType: fileLinkType, precision: capture.precision))
        defer { capture.close() }
        let bounded = seconds.isFinite ? min(max(seconds, 0), Durations.week) : 0
        let deadline = ContinuousClock.now + .milliseconds(Int64(bounded * 1000))
        while ContinuousClock.now < deadline && !shouldStop() && (packetLimit.map { recording.packets < $0 } ?? true) {
            try capture.poll(timeoutMillis: 100) { packet in
                recording.writer.append(packet)
                recording.packets += 1
            }
        }
        recording.statistics = try? capture.statistics()
        return recording
    }

    private enum Durations {
        static let week: Double = 7 * 24 * 3600
    }
}
