import NIOCore
import Protocol

/// One connection to a `--subscribe` broker. Thin: its `BrokerSubscription`'s state decides what
/// each frame gets (ack, answer, nothing); the events and replies go through a `ReceiverIntake`,
/// as a listening receiver's do, so the statistics and reports are the same.
final class SubscriberConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let intake: ReceiverIntake
    private let subscription: BrokerSubscription
    private var closeReason = "closed by the broker"

    init(intake: ReceiverIntake, subscription: BrokerSubscription) {
        self.intake = intake
        self.subscription = subscription
    }

    func channelActive(context: ChannelHandlerContext) {
        intake.opened(context: context)
        subscription.connected(context.channel)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        intake.closed(context: context)
        subscription.closed(context.channel, reason: closeReason)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let receivedNanos = WallClock.nowNanos()
        var timed: (event: VOEventSummary, sentNanos: Int64)?
        let incoming: SubscriptionState.Incoming
        switch Result(catching: { try VTPMessage.parse(frame) }) {
        case .success(.voEvent(let event)):
            do {
                timed = (event, try event.sendTimestampNanos())
                incoming = .event(ivorn: event.ivorn, valid: true)
            } catch {
                intake.shared.reportError("broker \(subscription.broker): event \(event.ivorn) acked, not timed: \(error)")
                incoming = .event(ivorn: event.ivorn, valid: false)
            }
        case .success(.transport(let transport)):
            incoming = .transport(transport)
        case .failure(let error):
            intake.shared.reportError("broker \(subscription.broker): ignored a frame: \(error)")
            incoming = .unparseable
        }
        for action in subscription.received(incoming, wallNanos: receivedNanos) {
            switch action {
            case .record:
                if let timed {
                    intake.record(
                        timed.event, sentNanos: timed.sentNanos, receivedNanos: receivedNanos, broker: subscription.index,
                        context: context)
                }
            case .ack(let ivorn): intake.ack(ivorn, receivedNanos: receivedNanos, context: context)
            case .send(let message): intake.reply(message, context: context)
            case .connect, .close, .reconnect: subscription.execute([action])
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        intake.endRead(context: context, thenClose: false)
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            closeReason = "silent for the idle timeout"
            subscription.execute(subscription.silent())
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is VTPFramingError { intake.loop.value.tally.framingErrors += 1 }
        closeReason = ErrorText.describe(error)
        // The frames before the bad one are answered first, as they were read.
        intake.endRead(context: context, thenClose: true)
    }
}
