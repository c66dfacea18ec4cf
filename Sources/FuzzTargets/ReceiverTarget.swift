import Foundation
import NIOCore
import NIOEmbedded
import Protocol
import ProxyCore
import VTPEngine

/// What vtp-receiver does with a connection's bytes: the frame decoder it installs (inside a
/// real `ByteToMessageHandler`, reads split at random points, end of stream included), message
/// parsing, then for each event the statistics, the `--events-csv` row and the ack, for
/// anything else the nak or iamalive answer, and at the end the report lines and the summary.
/// The receiver's replies must be documents the sender can parse. vtp-proxy's VTP inspector
/// reads the same stream.
enum ReceiverTarget {
    static let receiverIVO = "ivo://vtpbench.test/receiver"
    /// A fixed receive time, so a replay does what the fuzzer did.
    static let receivedNanos: Int64 = 1_795_486_949_123_456_789

    static func run(_ bytes: UnsafeRawBufferPointer) {
        var input = SplitInput(bytes)
        // The same stream as vtp-proxy --protocol vtp sees it on its way to the receiver.
        var proxy = VTPInspector(direction: .upstream)
        FuzzCheck.inspect(&proxy, input)
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(VTPFrameDecoder()))
        var state = ReceiverState()
        var failed = false
        for read in input.reads {
            do {
                try channel.writeInbound(read: read)
            } catch {
                failed = true  // a framing error: the receiver closes the connection
            }
            state.drain(channel)
            if failed { break }
        }
        // The peer closes: a frame left incomplete is a truncation error, never a crash.
        _ = try? channel.finish()
        // The report and summary walk HdrHistograms whose size follows the largest latency
        // (up to a day: ~380,000 buckets per percentile): one input in 32, chosen by its bytes.
        if input.splits.next() % 32 == 0 { state.finish() }
    }

    /// The tally every event is counted in, as a receiver's event loop counts every connection's
    /// events. One per process: a tally per input cost a copy of its histogram (3 MiB once
    /// grown) for every input with an event. An input's verdicts never depend on the inputs before
    /// it: `record` returns the event as it came (no warm-up) whatever the tally holds, the
    /// histogram was grown to the plausible maximum before the first input (so it never resizes
    /// mid-run), and its counters cannot come near overflow. The report and summary, which do read
    /// the counts, get a tally of the input's own events (`ReceiverState.finish`).
    nonisolated(unsafe) static var sharedTally: ReceiverTally = {
        var tally = ReceiverTally()
        let day = Int64(ReceivedEvent.maximumPlausibleLatencyNanos)
        _ = tally.record(
            ReceivedEvent(
                sequence: nil, runID: nil, ivorn: "ivo://t/template#0", sentNanos: receivedNanos - day, receivedNanos: receivedNanos,
                remoteAddress: nil, remotePort: nil, inWarmup: false),
            warmup: WarmupWindow(seconds: 0))
        return tally
    }()

    struct ReceiverState {
        /// The input's events as counted, for the report and summary of `finish`.
        var events: [ReceivedEvent] = []
        var sequences: [SequenceSample] = []
        var rows = ""
        let warmup = WarmupWindow(seconds: 0)

        mutating func drain(_ channel: EmbeddedChannel) {
            while let frame = try? channel.readInbound(as: ByteBuffer.self) { handle(frame) }
        }

        mutating func handle(_ frame: ByteBuffer) {
            let message: VTPMessage
            do {
                message = try VTPMessage.parse(frame)
            } catch {
                reply(.nak(eventIVORN: ReceiverTarget.receiverIVO, localIVO: ReceiverTarget.receiverIVO, reason: "Event rejected: \(error)", nowNanos: ReceiverTarget.receivedNanos))
                return
            }
            switch message {
            case .voEvent(let event):
                let sent: Int64
                do {
                    sent = try event.sendTimestampNanos()
                } catch {
                    reply(.nak(eventIVORN: event.ivorn, localIVO: ReceiverTarget.receiverIVO, reason: "Event rejected: \(error)", nowNanos: ReceiverTarget.receivedNanos))
                    return
                }
                let received = ReceivedEvent(
                    sequence: event.sequence, runID: event.runID, ivorn: event.ivorn, sentNanos: sent,
                    receivedNanos: ReceiverTarget.receivedNanos, remoteAddress: "192.0.2.1", remotePort: 40_000,
                    inWarmup: false, senderClockOffset: event.clockOffset)
                let recorded = ReceiverTarget.sharedTally.record(received, warmup: warmup)
                events.append(received)
                if let sequence = event.sequence { sequences.append(SequenceSample(run: event.runID ?? "", sequence: sequence)) }
                EventsCSVWriter.appendRow(recorded, to: &rows)
                _ = recorded.withinClockError
                _ = recorded.implausibleTimestamp
                reply(
                    .ack(
                        eventIVORN: event.ivorn, localIVO: ReceiverTarget.receiverIVO, nowNanos: ReceiverTarget.receivedNanos,
                        params: [
                            .init(name: TransportMessage.receivedNanosParam, value: String(ReceiverTarget.receivedNanos)),
                            .init(name: TransportMessage.repliedNanosParam, value: String(ReceiverTarget.receivedNanos)),
                        ]))
            case .transport(let transport):
                if transport.role == .iamalive {
                    reply(
                        TransportMessage(
                            role: .iamalive, origin: transport.origin, response: ReceiverTarget.receiverIVO,
                            timestamp: ISO8601Time.formatSeconds(nanos: ReceiverTarget.receivedNanos)))
                }
            }
        }

        /// Every reply goes out as one frame the sender must be able to read back.
        func reply(_ message: TransportMessage) {
            var framed = message.framed()
            let payload = try? VTPFrameDecoder.nextFrame(from: &framed, maximumFrameSize: Int(UInt32.max))
            FuzzCheck.expect(payload != nil, "a reply does not frame: \(message)")
            guard let payload else { return }
            do {
                guard case .transport(let parsed) = try VTPMessage.parse(payload) else {
                    return FuzzCheck.expect(false, "a reply parses as a VOEvent: \(message.xml)")
                }
                FuzzCheck.expect(parsed.role == message.role, "a reply's role changed: \(message.xml)")
            } catch {
                FuzzCheck.expect(false, "the receiver wrote a reply it cannot parse (\(error)): \(message.xml)")
            }
        }

        /// The report lines and the summary over a fresh tally of this input's events, as the
        /// receiver's first report interval would hold them.
        func finish() {
            guard !events.isEmpty else { return }
            var tally = ReceiverTally()
            for event in events { _ = tally.record(event, warmup: warmup) }
            var statistics = ReceiverStatistics(startNanos: ReceiverTarget.receivedNanos - 1_000_000_000)
            statistics.record(sequences: sequences)
            let lines = statistics.report(adding: tally, nowNanos: ReceiverTarget.receivedNanos + 1_000_000_000)
            _ = lines.joined()
            let summary = statistics.summary(nowNanos: ReceiverTarget.receivedNanos + 2_000_000_000)
            do {
                _ = try JSONEncoder().encode(summary)
            } catch {
                FuzzCheck.expect(false, "the receiver's summary does not encode: \(error)")
            }
        }
    }
}
