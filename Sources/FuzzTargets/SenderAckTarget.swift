import CommandLineKit
import Foundation
import NIOCore
import Protocol
import ProxyCore
import VTPEngine

/// What vtp-sender does with the bytes a receiver sends back: frames (split at random points),
/// Transport parsing, the ack/nak/iamalive decision, the clock-offset sample an ack's
/// `received_ns`/`replied_ns` give, the estimator and its summary.
enum SenderAckTarget {
    static let senderIVO = "ivo://vtpbench.test/sender"
    static let writtenNanos: Int64 = 1_795_486_949_000_000_000
    static let readNanos: Int64 = 1_795_486_949_000_500_000

    static func run(_ bytes: UnsafeRawBufferPointer) {
        let input = SplitInput(bytes)
        // The same stream as vtp-proxy --protocol vtp sees it on its way back to the sender.
        var proxy = VTPInspector(direction: .downstream)
        FuzzCheck.inspect(&proxy, input)
        var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
        var estimator = ClockOffsetEstimator(window: 4)
        reading: for read in input.reads {
            buffer.writeBytes(read)
            while true {
                let frame: ByteBuffer?
                do {
                    frame = try VTPFrameDecoder.nextFrame(from: &buffer, maximumFrameSize: VTPFraming.defaultMaximumFrameSize)
                } catch {
                    break reading  // the sender fails the connection
                }
                guard let frame else { break }
                guard handle(frame, estimator: &estimator) else { break reading }
            }
        }
        if let estimate = estimator.estimate {
            let summary = ClockOffsetSummary(estimate, samples: estimator.samples)
            do {
                _ = try JSONEncoder().encode(summary)
            } catch {
                FuzzCheck.expect(false, "the clock-offset summary does not encode: \(error)")
            }
            _ = Human.signedDuration(seconds: summary.offset) + Human.duration(seconds: summary.errorBound)
        }
    }

    /// False when the sender would fail the connection.
    static func handle(_ frame: ByteBuffer, estimator: inout ClockOffsetEstimator) -> Bool {
        guard case .transport(let transport) = try? VTPMessage.parse(frame) else { return false }
        switch transport.role {
        case .ack, .nak:
            _ = transport.role == .nak ? (transport.result ?? "no reason given") : nil
            if let t1 = transport.integerParam(TransportMessage.receivedNanosParam),
                let t2 = transport.integerParam(TransportMessage.repliedNanosParam)
            {
                let sample = ClockSample(sent: writtenNanos, received: t1, replied: t2, ackRead: readNanos)
                _ = sample.errorBoundNanos
                estimator.add(sample)
            }
            return true
        case .iamalive:
            let reply = TransportMessage(
                role: .iamalive, origin: transport.origin, response: senderIVO,
                timestamp: ISO8601Time.formatSeconds(nanos: readNanos))
            FuzzCheck.expect(
                (try? VTPMessage.parse(reply.xml)) != nil, "the sender's iamalive answer does not parse: \(reply.xml)")
            return true
        case .authenticate:
            return true
        }
    }
}
