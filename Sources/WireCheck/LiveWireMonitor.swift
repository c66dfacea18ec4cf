import NIOConcurrencyHelpers
import NIOPosix
import PacketCapture
import Synchronization
import VTPEngine
import VTPWire

/// Captures a receiver's own port on PacketCapture's capture thread while it runs and pairs every
/// event seen on the wire with the application's reading of it (`vtp-receiver --capture-interface`).
///
/// Open it before the receiver binds (so nothing is missed), `start(port:)` once the port is
/// known, feed it the receiver's events with `recordApp` (from the event loops), and `stop()` at
/// the end. The correlation lives on the capture thread; the event loops hand their events over
/// through per-thread inboxes, so the per-event path takes no lock another event loop takes.
public final class LiveWireMonitor: Sendable {
    public let interface: String
    public var precision: TimestampPrecision { thread.precision }
    public var linkTypeName: String { LiveCapture.linkTypeName(thread.linkType) }
    /// Set when the interface fell back to microsecond timestamps.
    public var precisionNote: String? { thread.precisionNote }
    private let thread: CaptureThread<WireMonitorConsumer>
    private let inbox = AppEventInbox()
    private let keepsPairs: Bool
    /// Written once by `stop`.
    private let result = Mutex<(summary: WireCheckSummary, pairs: [WireAppPair], failure: String?)?>(nil)

    /// Opens the capture (root or CAP_NET_RAW needed); `keepsPairs` keeps every pair for `pairs`.
    public init(interface: String, keepsPairs: Bool = false) throws(LiveCaptureError) {
        self.interface = interface
        self.keepsPairs = keepsPairs
        // Everything TCP until the port is known; `start` narrows it.
        let capture = try LiveCapture(interface: interface, filter: "tcp", bufferBytes: 64 << 20)
        thread = CaptureThread(capture: capture, threadName: "vtp-wire-capture")
    }

    /// Narrows the capture to `port` and starts the capture thread.
    public func start(port: Int) throws(LiveCaptureError) {
        guard let serverPort = UInt16(exactly: port) else {
            throw .badFilter(filter: "port \(port)", detail: "not a TCP port")
        }
        var analyzer = VTPWireAnalyzer(port: serverPort, keepsEvents: false)
        analyzer.identifiesEventsOnly = true  // the app supplies each event's send time
        // A capture drop must not stall a persistent connection: give up on a hole after 3 s
        // (well past loopback/LAN retransmission timeouts).
        analyzer.reassembler.maximumHoleAgeNanos = 3_000_000_000
        let consumer = WireMonitorConsumer(
            analyzer: analyzer, correlator: WireAppCorrelator(keepsPairs: keepsPairs), inbox: inbox)
        try thread.start(consumer: consumer) { capture throws(LiveCaptureError) in
            try capture.setFilter(Self.filter(port: port))
        }
    }

    /// The receiver's port, minus IPv4 pure ACKs (no payload, no SYN/FIN/RST): about half of
    /// the packets, and nothing the wire check needs (BPF cannot look inside IPv6 TCP headers,
    /// so IPv6 is kept whole).
    public static func filter(port: Int) -> String {
        "tcp port \(port) and (ip6 or tcp[13] & 7 != 0 or ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2) != 0)"
    }

    /// The application's reading of one event (call from any thread; meant for event loops).
    public func recordApp(_ event: ReceivedEvent) {
        inbox.post(
            AppEvent(ivorn: event.ivorn, sentNanos: event.sentNanos, appNanos: event.receivedNanos, inWarmup: event.inWarmup))
    }

    /// `recordApp` as a receiver observer.
    public var observer: @Sendable (ReceivedEvent) -> Void { { [self] in recordApp($0) } }

    /// Stops capturing once every application event has been seen on the wire (or after
    /// `drainSeconds`: the capture may lag the application by its buffer) and summarises.
    public func stop(drainSeconds: Double = 2) -> WireCheckSummary {
        if let done = result.withLock({ $0 }) { return done.summary }
        let outcome = thread.stop(drainSeconds: drainSeconds)
        var correlator = outcome.consumer?.correlator ?? WireAppCorrelator()
        let totals = outcome.consumer?.analyzer.reassembler.totals ?? TCPReassembler.Totals()
        if outcome.consumer == nil {
            // Never started: the events the app reported were never looked for on the wire.
            for event in inbox.takeAll() {
                correlator.recordApp(ivorn: event.ivorn, sentNanos: event.sentNanos, appNanos: event.appNanos, inWarmup: event.inWarmup)
            }
        }
        let statistics = outcome.statistics ?? CaptureStatistics()
        let summary = WireCheckSummary(
            wireLatency: correlator.wireLatency.summary, appMinusWire: correlator.appMinusWire.summary,
            wireOnly: correlator.wireOnly, appOnly: correlator.appOnly, matched: correlator.matched,
            wireAfterApp: correlator.wireAfterApp, captureInterface: interface, capturePrecision: thread.precision,
            capturePackets: outcome.decode.packets, captureReceived: statistics.received,
            captureDropped: outcome.decode.captureDropped, retransmittedSegments: totals.retransmittedSegments,
            captureGaps: outcome.decode.reassemblyGaps, decode: outcome.decode)
        result.withLock { $0 = (summary, correlator.pairs, outcome.failure) }
        return summary
    }

    /// Every pair seen (only with `keepsPairs`; after `stop`).
    public var pairs: [WireAppPair] { result.withLock { $0?.pairs ?? [] } }
    /// Why the capture thread ended early, if it did (after `stop`).
    public var captureError: String? { result.withLock { $0?.failure } }
}

/// One application reading, on its way to the capture thread.
struct AppEvent: Sendable {
    var ivorn: String
    var sentNanos: Int64
    var appNanos: Int64
    var inWarmup: Bool
}

/// The application's events on their way to the capture thread. Each thread that posts (an
/// event loop) gets its own buffer, found through a thread-local without any shared lookup; its
/// lock is taken by that thread per event and by the capture thread once per poll to swap the
/// buffer out, never by another event loop. The registry lock is taken once per thread.
///
/// The locks are NIOLockedValueBox (a pthread mutex) rather than Synchronization.Mutex: on Linux
/// Mutex is a bare futex that ThreadSanitizer cannot see, so it reported the hand-over between an
/// event loop and the capture thread as a race although both sides hold the lock.
final class AppEventInbox: Sendable {
    final class Buffer: Sendable {
        let events = NIOLockedValueBox<[AppEvent]>([])
    }

    private let current = ThreadSpecificVariable<Buffer>()
    private let buffers = NIOLockedValueBox<[Buffer]>([])

    func post(_ event: AppEvent) {
        let buffer: Buffer
        if let existing = current.currentValue {
            buffer = existing
        } else {
            buffer = Buffer()
            current.currentValue = buffer
            buffers.withLockedValue { $0.append(buffer) }
        }
        buffer.events.withLockedValue { $0.append(event) }
    }

    /// Everything posted so far, each thread's events in the order it posted them.
    func takeAll() -> [AppEvent] {
        var taken: [AppEvent] = []
        for buffer in buffers.withLockedValue({ $0 }) {
            var events: [AppEvent] = []
            buffer.events.withLockedValue { swap(&$0, &events) }  // O(1) under the lock
            taken += events
        }
        return taken
    }
}

/// The wire check's work on the capture thread: VTP events off the wire, paired with the
/// application's as they arrive.
struct WireMonitorConsumer: CaptureConsumer {
    var analyzer: VTPWireAnalyzer
    var correlator: WireAppCorrelator
    let inbox: AppEventInbox

    mutating func consume(_ segment: TCPSegment) {
        for event in analyzer.add(segment) { correlator.recordWire(event) }
    }

    mutating func afterPoll() {
        for event in inbox.takeAll() {
            correlator.recordApp(ivorn: event.ivorn, sentNanos: event.sentNanos, appNanos: event.appNanos, inWarmup: event.inWarmup)
        }
    }

    /// Drained when every application event has been seen on the wire.
    var isDrained: Bool { correlator.appOnly == 0 }

    mutating func finish() {
        afterPoll()
        for event in analyzer.finish() { correlator.recordWire(event) }
    }

    var reassemblyTotals: TCPReassembler.Totals { analyzer.reassembler.totals }
}
