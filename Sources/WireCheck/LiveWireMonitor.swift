import Dispatch
import Foundation
import NIOConcurrencyHelpers
import PacketCapture
import VTPProtocol
import VTPTransport
import VTPWire

/// Captures a receiver's own port on a dedicated thread while it runs and pairs every event
/// seen on the wire with the application's reading of it (`vtp-receiver --capture-interface`).
///
/// Open it before the receiver binds (so nothing is missed), `start(port:)` once the port is
/// known, feed it the receiver's events with `recordApp`, and `stop()` at the end.
public final class LiveWireMonitor: @unchecked Sendable {
    public let interface: String
    public var precision: TimestampPrecision { capture.precision }
    public var linkTypeName: String { LiveCapture.linkTypeName(capture.linkType) }
    /// Set when the interface fell back to microsecond timestamps.
    public var precisionNote: String? { capture.precisionNote }
    private let capture: LiveCapture  // touched only by the capture thread once started
    private let lock = NIOLock()
    private var correlator: WireAppCorrelator
    private var stopRequested = false
    private var drainDeadline = DispatchTime.distantFuture
    private var statistics = CaptureStatistics()
    private var totals = TCPReassembler.Totals()
    private var packets = 0
    private var failure: String?
    private let finished = DispatchSemaphore(value: 0)
    private var started = false

    /// Opens the capture (root or CAP_NET_RAW needed); `keepsPairs` keeps every pair for `pairs`.
    public init(interface: String, keepsPairs: Bool = false) throws(LiveCaptureError) {
        self.interface = interface
        // Everything TCP until the port is known; `start` narrows it.
        capture = try LiveCapture(interface: interface, filter: "tcp", bufferBytes: 64 << 20)
        correlator = WireAppCorrelator(keepsPairs: keepsPairs)
    }

    /// Narrows the capture to `port` and starts the capture thread.
    public func start(port: Int) throws(LiveCaptureError) {
        try capture.setFilter(Self.filter(port: port))
        lock.withLock { started = true }
        let thread = Thread { [self] in run(port: UInt16(port)) }
        thread.name = "vtp-wire-capture"
        thread.start()
    }

    /// The receiver's port, minus IPv4 pure ACKs (no payload, no SYN/FIN/RST): about half of
    /// the packets, and nothing the wire check needs (BPF cannot look inside IPv6 TCP headers,
    /// so IPv6 is kept whole).
    public static func filter(port: Int) -> String {
        "tcp port \(port) and (ip6 or tcp[13] & 7 != 0 or ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2) != 0)"
    }

    /// The application's reading of one event (call from any thread).
    public func recordApp(_ event: ReceivedEvent) {
        lock.withLock {
            correlator.recordApp(
                ivorn: event.ivorn, sentNanos: event.sentNanos, appNanos: event.receivedNanos, inWarmup: event.inWarmup)
        }
    }

    /// `recordApp` as a receiver observer.
    public var observer: @Sendable (ReceivedEvent) -> Void { { [self] in recordApp($0) } }

    /// Stops capturing once every application event has been seen on the wire (or after
    /// `drainSeconds`: the capture may lag the application by its buffer) and summarises.
    public func stop(drainSeconds: Double = 2) -> WireCheckSummary {
        let wasStarted = lock.withLock {
            stopRequested = true
            drainDeadline = .now() + drainSeconds
            return started
        }
        if wasStarted { finished.wait() }
        capture.close()
        return lock.withLock {
            WireCheckSummary(
                wireLatency: correlator.wireLatency.summary, appMinusWire: correlator.appMinusWire.summary,
                wireOnly: correlator.wireOnly, appOnly: correlator.appOnly, matched: correlator.matched,
                wireAfterApp: correlator.wireAfterApp, captureInterface: interface, capturePrecision: capture.precision,
                capturePackets: packets, captureReceived: statistics.received, captureDropped: statistics.dropped + statistics.interfaceDropped,
                retransmittedSegments: totals.retransmittedSegments, captureGaps: totals.gaps)
        }
    }

    /// Every pair seen (only with `keepsPairs`).
    public var pairs: [WireAppPair] { lock.withLock { correlator.pairs } }
    /// Why the capture thread ended early, if it did.
    public var captureError: String? { lock.withLock { failure } }

    private func run(port: UInt16) {
        var analyzer = VTPWireAnalyzer(port: port, keepsEvents: false)
        analyzer.identifiesEventsOnly = true  // the app supplies each event's send time
        // A capture drop must not stall a persistent connection: give up on a hole after 3 s
        // (well past loopback/LAN retransmission timeouts).
        analyzer.reassembler.maximumHoleAgeNanos = 3_000_000_000
        let linkType = capture.linkType
        var batch: [WireEvent] = []
        defer { finished.signal() }
        while true {
            let delivered: Int
            do {
                delivered = try capture.poll(timeoutMillis: 20) { packet in
                    batch += analyzer.add(packet, linkType: linkType)
                }
            } catch {
                lock.withLock { failure = "\(error)" }
                break
            }
            let done: Bool = lock.withLock {
                for event in batch { correlator.recordWire(event) }
                guard stopRequested else { return false }
                // Drained: the kernel had nothing more and every app event was matched.
                return (delivered == 0 && correlator.appOnly == 0) || DispatchTime.now() >= drainDeadline
            }
            batch.removeAll(keepingCapacity: true)
            if done { break }
        }
        let tail = analyzer.finish()
        let stats = try? capture.statistics()
        lock.withLock {
            for event in tail { correlator.recordWire(event) }
            if let stats { statistics = stats }
            totals = analyzer.reassembler.totals
            packets = analyzer.counts.packets
        }
    }
}
