#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import Protocol

/// One receiver connection that listens for authors. It never closes first except on a framing
/// error or idle timeout, so per-event and persistent senders both work. Its events and replies
/// go through a `ReceiverIntake` (one flush per read, CSV rows before acks).
final class ReceiverConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    typealias Shared = ReceiverIntake.Shared

    private let intake: ReceiverIntake
    private var shared: Shared { intake.shared }

    init(shared: Shared, loop: NIOLoopBoundBox<ReceiverLoopState>) {
        intake = ReceiverIntake(shared: shared, loop: loop)
    }

    func channelActive(context: ChannelHandlerContext) {
        intake.opened(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        intake.closed(context: context)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let message: VTPMessage
        do {
            message = try VTPMessage.parse(frame)
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
            intake.record(event, sentNanos: sentNanos, receivedNanos: receivedNanos, context: context)
            intake.ack(event.ivorn, receivedNanos: receivedNanos, context: context)
        case .transport(let transport):
            // iamalive: answered with a copy naming us; ack, nak and authenticate need no answer.
            if transport.role == .iamalive, let answer = transport.answer(from: shared.receiverIVO) {
                intake.reply(answer, context: context)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        intake.endRead(context: context, thenClose: false)
        context.fireChannelReadComplete()
    }

    private func nak(context: ChannelHandlerContext, origin: String, reason: String) {
        intake.loop.value.tally.naks += 1
        shared.reportError("nak to \(intake.peer): \(reason)")
        intake.reply(TransportMessage.nak(eventIVORN: origin, localIVO: shared.receiverIVO, reason: reason), context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            shared.reportError("closing idle connection from \(intake.peer)")
            intake.endRead(context: context, thenClose: true)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is VTPFramingError {
            intake.loop.value.tally.framingErrors += 1
            shared.reportError("closing connection from \(intake.peer): \(error)")
        } else if let io = error as? IOError, io.errnoCode == ECONNRESET {
            // The peer reset the connection; nothing to report beyond its close.
        } else {
            shared.reportError("connection from \(intake.peer): \(error)")
        }
        // The frames before the bad one are answered first, as they were read.
        intake.endRead(context: context, thenClose: true)
    }
}
