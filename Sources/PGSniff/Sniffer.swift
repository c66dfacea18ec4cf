import PacketCapture

public enum SniffError: Error, CustomStringConvertible {
    case unsupportedLinkType(UInt32)
    public var description: String {
        switch self {
        case .unsupportedLinkType(let type):
            return "the capture's link type \(LinkType.name(type)) is not supported"
                + " (Ethernet, Linux cooked SLL/SLL2, raw IP and loopback are)"
        }
    }
}

/// The BPF filter for the server ports: only the packets the inference can use.
public func sniffFilter(ports: Set<UInt16>) -> String {
    "tcp and (" + ports.sorted().map { "port \($0)" }.joined(separator: " or ") + ")"
}

/// Runs the inference over a pcap file (tcpdump -w output, any supported link type). Throws
/// when the file cannot be read as a capture at all; a file cut short or corrupt part-way is
/// analysed up to that record, and `readError` says where and why.
public func sniffFile(
    path: String, serverPorts: Set<UInt16>, onTiming: (PGQueryTiming) -> Void
) throws -> (counters: PGSniffCounters, decode: DecodeCounters, readError: PcapFileError?) {
    let reader = try PcapFileReader(path: path)
    guard LinkType.isSupported(reader.linkType) else { throw SniffError.unsupportedLinkType(reader.linkType) }
    var extractor = SegmentExtractor(linkType: reader.linkType)
    var inference = PGLatencyInference(serverPorts: serverPorts)
    var readError: PcapFileError?
    do {
        while let packet = try reader.next() {
            guard let segment = extractor.segment(from: packet) else { continue }
            for timing in inference.ingest(segment) { onTiming(timing) }
        }
    } catch {
        readError = error
    }
    for timing in inference.finish() { onTiming(timing) }
    var decode = extractor.counters
    decode.update(from: inference.reassemblyTotals)
    return (inference.counters, decode, readError)
}

/// The inference as the capture thread's consumer: timings go to `onTiming` on that thread.
struct SniffConsumer: CaptureConsumer {
    var inference: PGLatencyInference
    let onTiming: @Sendable (PGQueryTiming) -> Void

    mutating func consume(_ segment: TCPSegment) {
        for timing in inference.ingest(segment) { onTiming(timing) }
    }

    mutating func finish() {
        for timing in inference.finish() { onTiming(timing) }
    }

    var reassemblyTotals: TCPReassembler.Totals { inference.reassemblyTotals }
}

/// A live capture feeding the inference on PacketCapture's capture thread.
public final class LiveSniffer: Sendable {
    public struct Result: Sendable {
        public var counters: PGSniffCounters
        public var decode: DecodeCounters
        /// pcap_stats at the end; nil if it could not be read.
        public var capture: CaptureStatistics?
        /// Why capture stopped early, if it did.
        public var failure: String?
        /// The interface the capture was on.
        public var interface: String
    }

    public var interface: String { thread.interface }
    public var precision: TimestampPrecision { thread.precision }
    public var linkType: UInt32 { thread.linkType }
    private let thread: CaptureThread<SniffConsumer>
    private let serverPorts: Set<UInt16>

    /// Opens the capture now: once this returns, packets on the port are being recorded.
    /// Not in immediate mode: there each ring slot holds one packet of up to the MTU (64 KiB on
    /// `lo`), so 64 MiB is only ~1,000 packets of slack and a briefly starved capture thread
    /// drops packets; packed blocks hold tens of thousands. Packets reach the inference up to
    /// `blockTimeoutMillis` late, which changes no timestamp.
    public init(
        interface: String, serverPorts: Set<UInt16>, bufferBytes: Int32 = 64 << 20, blockTimeoutMillis: Int32 = 50
    ) throws {
        let capture = try LiveCapture(
            interface: interface, filter: sniffFilter(ports: serverPorts), bufferBytes: bufferBytes,
            blockTimeoutMillis: blockTimeoutMillis)
        guard LinkType.isSupported(capture.linkType) else {
            capture.close()
            throw SniffError.unsupportedLinkType(capture.linkType)
        }
        self.serverPorts = serverPorts
        thread = CaptureThread(capture: capture, threadName: "pgprobe-capture", pollMillis: 50)
    }

    /// Starts the capture thread; `onTiming` runs on it for every completed request.
    public func start(onTiming: @escaping @Sendable (PGQueryTiming) -> Void) {
        // Nothing to configure, so nothing can throw.
        try? thread.start(consumer: SniffConsumer(inference: PGLatencyInference(serverPorts: serverPorts), onTiming: onTiming))
    }

    /// Stops the capture and waits for the thread; returns the final counters.
    public func stop() -> Result {
        let outcome = thread.stop()
        return Result(
            counters: outcome.consumer?.inference.counters ?? PGSniffCounters(), decode: outcome.decode,
            capture: outcome.statistics, failure: outcome.failure, interface: thread.interface)
    }
}
