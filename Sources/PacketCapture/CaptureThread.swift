import Dispatch
import Foundation
import Synchronization

/// What a capture thread feeds: every decoded TCP segment in capture order, then the end.
/// The thread owns its consumer; no other thread touches it until the capture has stopped.
public protocol CaptureConsumer: Sendable {
    /// A TCP segment decoded from a captured packet (the driver counts the packets that were not).
    mutating func consume(_ segment: TCPSegment)
    /// After every poll, with or without packets (every few ms): periodic work, such as taking
    /// in what other threads handed over.
    mutating func afterPoll()
    /// Once a stop was requested: whether everything awaited has been seen, so the drain may end
    /// at the next empty poll (it always ends when the drain time is up).
    var isDrained: Bool { get }
    /// End of capture: give up on remaining holes, flush what follows them.
    mutating func finish()
    /// The consumer's reassembly totals, for the gap counters of `DecodeCounters`.
    var reassemblyTotals: TCPReassembler.Totals { get }
}

extension CaptureConsumer {
    public mutating func afterPoll() {}
    public var isDrained: Bool { true }
}

/// The one capture-thread driver (the receiver's wire check, `pgprobe sniff` and `crosscheck`):
/// a dedicated thread owns a `LiveCapture` and a consumer, polls the capture, decodes and counts
/// every packet (`DecodeCounters`) and hands the TCP segments to the consumer. A thread, not an
/// event loop: libpcap handles are not thread-safe, and capture must not delay the loops that
/// serve the traffic being measured.
///
/// Other threads only call `start` and `stop`. The capture is open from `init`, so nothing sent
/// after it returns is missed; `start` may first adjust it (e.g. the filter, once a port is known).
public final class CaptureThread<Consumer: CaptureConsumer>: Sendable {
    public struct Outcome: Sendable {
        /// The consumer as the capture thread left it; nil when the thread never started.
        public var consumer: Consumer?
        public var decode: DecodeCounters
        /// pcap_stats at the end; nil if never started or unreadable.
        public var statistics: CaptureStatistics?
        /// Why capture ended early, if it did.
        public var failure: String?
    }

    private struct Control {
        var started = false
        var stopRequested = false
        var drainDeadline = ContinuousClock.now
        var outcome: Outcome?
    }

    public let interface: String
    public let precision: TimestampPrecision
    public let linkType: UInt32
    /// Set when the device refused nanosecond timestamps.
    public let precisionNote: String?
    // The capture and the consumer wait here until the capture thread takes them (or a `stop`
    // before `start` closes the capture): after that only the capture thread touches them.
    private let capture: Mutex<LiveCapture?>
    private let consumer = Mutex<Consumer?>(nil)
    /// Read by the capture thread once per poll, never per packet.
    private let control = Mutex(Control())
    private let finished = DispatchSemaphore(value: 0)
    private let threadName: String
    private let pollMillis: Int32
    private let drainPollMillis: Int32

    /// `capture` must not be used elsewhere afterwards.
    public init(capture: sending LiveCapture, threadName: String, pollMillis: Int32 = 20) {
        interface = capture.interface
        precision = capture.precision
        linkType = capture.linkType
        precisionNote = capture.precisionNote
        self.threadName = threadName
        self.pollMillis = pollMillis
        // While draining, a poll waits for the block the kernel is still filling to be handed over.
        drainPollMillis = (capture.blockTimeoutMillis ?? 0) + 20
        self.capture = Mutex(capture)
    }

    /// Applies `configure` to the capture, then starts the capture thread with `consumer` (once;
    /// later calls, and calls after `stop`, do nothing).
    public func start(
        consumer: sending Consumer, configure: (LiveCapture) throws(LiveCaptureError) -> Void = { _ in }
    ) throws(LiveCaptureError) {
        let first = control.withLock { control in
            guard !control.started && !control.stopRequested else { return false }
            control.started = true
            return true
        }
        guard first else { return }
        do {
            try capture.withLock { (capture) throws(LiveCaptureError) in
                if let capture { try configure(capture) }
            }
        } catch {
            control.withLock { $0.started = false }
            throw error
        }
        self.consumer.withLock { $0 = consumer }
        let thread = Thread { [self] in run() }
        thread.name = threadName
        thread.start()
    }

    /// Asks the thread to stop once it has drained what the kernel holds (and the consumer is
    /// drained), at most `drainSeconds` from now; waits for it and returns what it measured.
    /// Safe to call more than once, and without `start` (then nothing was captured).
    public func stop(drainSeconds: Double = 2) -> Outcome {
        let bounded = drainSeconds.isFinite ? min(max(drainSeconds, 0), 3600) : 0
        let started = control.withLock { control in
            if !control.stopRequested {
                control.stopRequested = true
                control.drainDeadline = .now + .milliseconds(Int64(bounded * 1000))
            }
            return control.started
        }
        if started {
            finished.wait()
            finished.signal()  // a later stop() returns at once
        } else {
            capture.withLock { $0.take()?.close() }
            control.withLock { control in
                if control.outcome == nil {
                    control.outcome = Outcome(consumer: nil, decode: DecodeCounters(), statistics: nil, failure: nil)
                }
            }
        }
        return control.withLock { $0.outcome } ?? Outcome(consumer: nil, decode: DecodeCounters())
    }

    private func run() {
        guard let capture = capture.withLock({ $0.take() }), var consumer = consumer.withLock({ $0.take() }) else {
            return
        }
        var decode = DecodeCounters()
        var failure: String?
        let linkType = capture.linkType
        while true {
            let (stopping, deadline) = control.withLock { ($0.stopRequested, $0.drainDeadline) }
            let delivered: Int
            do {
                delivered = try capture.poll(timeoutMillis: stopping ? drainPollMillis : pollMillis) { packet in
                    if let segment = decode.segment(from: packet, linkType: linkType) { consumer.consume(segment) }
                }
            } catch {
                failure = error.description
                break
            }
            consumer.afterPoll()
            if stopping && ((delivered == 0 && consumer.isDrained) || ContinuousClock.now >= deadline) { break }
        }
        consumer.finish()
        let statistics = try? capture.statistics()
        capture.close()
        if let statistics { decode.update(from: statistics) }
        decode.update(from: consumer.reassemblyTotals)
        let outcome = Outcome(consumer: consumer, decode: decode, statistics: statistics, failure: failure)
        control.withLock { $0.outcome = outcome }
        finished.signal()
    }
}

extension CaptureThread.Outcome {
    init(consumer: Consumer?, decode: DecodeCounters) {
        self.init(consumer: consumer, decode: decode, statistics: nil, failure: nil)
    }
}
