import Foundation
import PacketCapture
import Synchronization

/// Frames that yielded no TCP segment, by reason.
public struct DecodeCounters: Sendable, Equatable, Codable {
    public var packets = 0
    public var notTCP = 0
    public var fragments = 0
    public var truncated = 0
    public var malformed = 0
    public init() {}
}

/// Turns captured frames into segments for the inference.
public struct SegmentExtractor: Sendable {
    public let linkType: UInt32
    public private(set) var counters = DecodeCounters()

    public init(linkType: UInt32) { self.linkType = linkType }

    public mutating func segment(from packet: CapturedPacket) -> TCPSegment? {
        counters.packets += 1
        switch PacketDecoder.decode(packet, linkType: linkType) {
        case .segment(let segment): return segment
        case .notTCP: counters.notTCP += 1
        case .ipFragment: counters.fragments += 1
        case .truncated: counters.truncated += 1
        case .malformed: counters.malformed += 1
        }
        return nil
    }
}

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

/// Runs the inference over a pcap file (tcpdump -w output, any supported link type).
public func sniffFile(
    path: String, serverPorts: Set<UInt16>, onTiming: (PGQueryTiming) -> Void
) throws -> (PGSniffCounters, DecodeCounters) {
    let reader = try PcapFileReader(path: path)
    guard LinkType.isSupported(reader.linkType) else { throw SniffError.unsupportedLinkType(reader.linkType) }
    var extractor = SegmentExtractor(linkType: reader.linkType)
    var inference = PGLatencyInference(serverPorts: serverPorts)
    while let packet = try reader.next() {
        guard let segment = extractor.segment(from: packet) else { continue }
        for timing in inference.ingest(segment) { onTiming(timing) }
    }
    for timing in inference.finish() { onTiming(timing) }
    return (inference.counters, extractor.counters)
}

/// A live capture feeding the inference on its own thread (libpcap handles are not
/// thread-safe, and a dedicated thread keeps capture off the probe's event loops).
public final class LiveSniffer: Sendable {
    public struct Result: Sendable {
        public var counters: PGSniffCounters
        public var decode: DecodeCounters
        /// pcap_stats at the end; nil if it could not be read.
        public var capture: CaptureStatistics?
        /// Why capture stopped early, if it did.
        public var failure: String?
    }

    private struct State {
        var started = false
        var stopRequested = false
        var result: Result?
    }

    public let interface: String
    public let precision: TimestampPrecision
    public let linkType: UInt32
    private let capture: Mutex<LiveCapture?>
    private let state = Mutex(State())
    private let finished = DispatchSemaphore(value: 0)
    private let serverPorts: Set<UInt16>
    private let blockTimeoutMillis: Int32

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
        self.interface = interface
        self.precision = capture.precision
        self.linkType = capture.linkType
        self.serverPorts = serverPorts
        self.blockTimeoutMillis = blockTimeoutMillis
        self.capture = Mutex(capture)
    }

    /// Starts the capture thread; `onTiming` runs on it for every completed request.
    public func start(onTiming: @escaping @Sendable (PGQueryTiming) -> Void) {
        guard state.withLock({ state in
            defer { state.started = true }
            return !state.started
        }) else { return }
        let thread = Thread { [self] in
            guard let capture = self.capture.withLock({ $0.take() }) else { return }
            var extractor = SegmentExtractor(linkType: self.linkType)
            var inference = PGLatencyInference(serverPorts: self.serverPorts)
            var failure: String?
            while !self.state.withLock({ $0.stopRequested }) {
                do {
                    try capture.poll(timeoutMillis: 50) { packet in
                        guard let segment = extractor.segment(from: packet) else { return }
                        for timing in inference.ingest(segment) { onTiming(timing) }
                    }
                } catch {
                    failure = "\(error)"
                    break
                }
            }
            // Whatever arrived before the stop request, including the block the kernel is
            // still filling (it is handed over when its timeout expires).
            while failure == nil {
                let drained = try? capture.poll(timeoutMillis: self.blockTimeoutMillis + 20) { packet in
                    guard let segment = extractor.segment(from: packet) else { return }
                    for timing in inference.ingest(segment) { onTiming(timing) }
                }
                if (drained ?? 0) == 0 { break }
            }
            for timing in inference.finish() { onTiming(timing) }
            let statistics = try? capture.statistics()
            capture.close()
            let result = Result(
                counters: inference.counters, decode: extractor.counters, capture: statistics, failure: failure)
            self.state.withLock { $0.result = result }
            self.finished.signal()
        }
        thread.name = "pgprobe-capture"
        thread.start()
    }

    /// Stops the capture and waits for the thread; returns the final counters.
    public func stop() -> Result {
        let started = state.withLock { state in
            state.stopRequested = true
            return state.started
        }
        if !started {
            capture.withLock { $0?.close() }
            return Result(counters: PGSniffCounters(), decode: DecodeCounters(), capture: nil, failure: nil)
        }
        finished.wait()
        finished.signal()  // a second stop() returns at once
        return state.withLock { $0.result! }
    }
}
