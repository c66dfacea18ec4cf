#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import Protocol

/// One receiver connection. It never closes first except on a framing error or idle
/// timeout, so per-event and persistent senders both work.
///
/// It answers a whole read's worth of pipelined frames with one flush (in
/// `channelReadComplete`). With `--events-csv`, that read's rows go to the writer first and
/// the replies follow once they are written, so an acked event is always in the file.
final class ReceiverConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// What every connection of a receiver shares; immutable.
    struct Shared: Sendable {
        var receiverIVO: String
        var csv: (any EventRowWriter)?
        var warmup: WarmupWindow
        var observer: (@Sendable (ReceivedEvent) -> Void)?
        var reportError: @Sendable (String) -> Void
        /// Hands a loop's sequence numbers to the home loop; queued on the loop once per turn.
        var handOver: @Sendable (NIOLoopBoundBox<ReceiverLoopState>) -> Void
    }

    private let shared: Shared
    private let loop: NIOLoopBoundBox<ReceiverLoopState>
    private var peer = "unknown peer"
    private var remoteAddress: String?
    private var remotePort: Int?
    /// With --events-csv: this read's replies and rows, handed over together.
    private var replies: [ByteBuffer] = []
    private var rows = ""
    /// Without: replies written and not yet flushed.
    private var unflushed = false

    init(shared: Shared, loop: NIOLoopBoundBox<ReceiverLoopState>) {
        self.shared = shared
        self.loop = loop
    }

    func channelActive(context: ChannelHandlerContext) {
        if let address = context.channel.remoteAddress {
            remoteAddress = address.ipAddress
            remotePort = address.port
            peer = "\(address.ipAddress ?? "?"):\(address.port ?? 0)"
        }
        let channel = context.channel
        loop.withValue { state in
            state.tally.connectionsOpened += 1
            state.connections[ObjectIdentifier(channel)] = channel
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let id = ObjectIdentifier(context.channel)
        loop.withValue { state in
            state.tally.connectionsClosed += 1
            state.connections[id] = nil
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let message: VTPMessage
        do {
            // Plain events without libxml2 (its parse was the receiver's largest cost per event).
            message = try VTPMessage.parsePlainFirst(frame)
        } catch {
            nak(context: context, origin: shared.receiverIVO, reason: "Event rejected: \(error)")
            return
        }
        switch message {
        case .voEvent(let event):
            let receivedNanos = WallClock.nowNanos()
            let sentNanos: Int64
            do {
                sentNanos = try event.sendTimestampNanos()
            } catch {
                nak(context: context, origin: event.ivorn, reason: "Event rejected: \(error)")
                return
            }
            let received = ReceivedEvent(
                sequence: event.sequence, runID: event.runID, ivorn: event.ivorn, sentNanos: sentNanos,
                receivedNanos: receivedNanos, remoteAddress: remoteAddress, remotePort: remotePort,
                inWarmup: false, senderClockOffset: event.clockOffset)
            let (recorded, queueHandOver) = loop.value.record(received, warmup: shared.warmup)
            if queueHandOver {
                let (loop, handOver) = (self.loop, shared.handOver)
                context.eventLoop.execute { handOver(loop) }  // after this turn's reads, on this loop
            }
            if shared.csv != nil { EventsCSVWriter.appendRow(recorded, to: &rows) }
            shared.observer?(recorded)
            // Receive and reply times let the sender estimate the clock offset (NTP-style).
            let repliedNanos = WallClock.nowNanos()
            let ack = TransportMessage.ack(
                eventIVORN: event.ivorn, localIVO: shared.receiverIVO, nowNanos: repliedNanos,
                params: [
                    .init(name: TransportMessage.receivedNanosParam, value: String(receivedNanos)),
                    .init(name: TransportMessage.repliedNanosParam, value: String(repliedNanos)),
                ])
            reply(ack, context: context)
        case .transport(let transport):
            switch transport.role {
            case .iamalive:
                let answer = TransportMessage(
                    role: .iamalive, origin: transport.origin, response: shared.receiverIVO,
                    timestamp: ISO8601Time.formatSeconds(nanos: WallClock.nowNanos()))
                reply(answer, context: context)
            case .ack, .nak, .authenticate:
                break  // nothing to answer
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        endRead(context: context, thenClose: false)
        context.fireChannelReadComplete()
    }

    private func reply(_ message: TransportMessage, context: ChannelHandlerContext) {
        let buffer = message.framed(allocator: context.channel.allocator)
        if shared.csv != nil {
            replies.append(buffer)
        } else {
            context.write(wrapOutboundOut(buffer), promise: nil)
            unflushed = true
        }
    }

    /// Sends this read's replies: at once, or once its CSV rows are written.
    private func endRead(context: ChannelHandlerContext, thenClose: Bool) {
        guard let csv = shared.csv else {
            if unflushed {
                unflushed = false
                context.flush()
            }
            if thenClose { context.close(promise: nil) }
            return
        }
        guard !replies.isEmpty || thenClose else { return }
        let (replies, rows, channel) = (self.replies, self.rows, context.channel)
        self.replies = []
        self.rows = ""
        // Through the writer even without rows, so replies keep their order.
        csv.write(rows, on: context.eventLoop).whenSuccess { outcome in
            if outcome == .written {
                for reply in replies { channel.write(reply, promise: nil) }
                channel.flush()
            }
            // Closed: the receiver is stopping and these rows were not written; no acks.
            if thenClose || outcome == .closed { channel.close(promise: nil) }
        }
    }

    private func nak(context: ChannelHandlerContext, origin: String, reason: String) {
        loop.value.tally.naks += 1
        shared.reportError("nak to \(peer): \(reason)")
        reply(TransportMessage.nak(eventIVORN: origin, localIVO: shared.receiverIVO, reason: reason), context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            shared.reportError("closing idle connection from \(peer)")
            endRead(context: context, thenClose: true)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is VTPFramingError {
            loop.value.tally.framingErrors += 1
            shared.reportError("closing connection from \(peer): \(error)")
        } else if let io = error as? IOError, io.errnoCode == ECONNRESET {
            // The peer reset the connection; nothing to report beyond its close.
        } else {
            shared.reportError("connection from \(peer): \(error)")
        }
        // The frames before the bad one are answered first, as they were read.
        endRead(context: context, thenClose: true)
    }
}
