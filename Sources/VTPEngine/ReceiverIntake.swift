import NIOCore
import Protocol

/// What a receiver connection does with its events and replies, whichever role it plays
/// (listening for authors, or subscribed to a broker): counts each event in its loop's state,
/// writes its CSV row, acks it, and answers a whole read's worth of pipelined frames with one
/// flush. With `--events-csv`, that read's rows go to the writer first and the replies follow
/// once they are written, so an acked event is always in the file.
///
/// Owned by one connection's handler, on its channel's loop. A class: closing the channel from
/// here re-enters it synchronously (channelInactive), which a struct's exclusive access forbids.
final class ReceiverIntake {
    /// What every connection of a receiver shares; immutable.
    struct Shared: Sendable {
        let receiverIVO: String
        var csv: (any EventRowWriter)?
        var warmup: WarmupWindow
        var observer: (@Sendable (ReceivedEvent) -> Void)?
        var reportError: @Sendable (String) -> Void
        /// Hands a loop's sequence numbers to the home loop; queued on the loop once per turn.
        var handOver: @Sendable (NIOLoopBoundBox<ReceiverLoopState>) -> Void
        /// Builds this receiver's acks from a byte template.
        let ackWriter: AckWriter

        init(
            receiverIVO: String, csv: (any EventRowWriter)?, warmup: WarmupWindow,
            observer: (@Sendable (ReceivedEvent) -> Void)?, reportError: @escaping @Sendable (String) -> Void,
            handOver: @escaping @Sendable (NIOLoopBoundBox<ReceiverLoopState>) -> Void
        ) {
            self.receiverIVO = receiverIVO
            self.csv = csv
            self.warmup = warmup
            self.observer = observer
            self.reportError = reportError
            self.handOver = handOver
            ackWriter = AckWriter(localIVO: receiverIVO)
        }
    }

    let shared: Shared
    let loop: NIOLoopBoundBox<ReceiverLoopState>
    private(set) var peer = "unknown peer"
    private var remoteAddress: String?
    private var remotePort: Int?
    /// This read's replies, in one buffer; with --events-csv, handed over with its rows.
    private var replies: ByteBuffer?
    private var rows = ""

    init(shared: Shared, loop: NIOLoopBoundBox<ReceiverLoopState>) {
        self.shared = shared
        self.loop = loop
    }

    func opened(context: ChannelHandlerContext) {
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
    }

    func closed(context: ChannelHandlerContext) {
        let id = ObjectIdentifier(context.channel)
        loop.withValue { state in
            state.tally.connectionsClosed += 1
            state.connections[id] = nil
        }
    }

    /// Counts an event in the statistics (and, with a `broker`, in the cross-broker duplicate
    /// count), writes its CSV row and tells the observer.
    func record(
        _ event: VOEventSummary, sentNanos: Int64, receivedNanos: Int64, broker: Int? = nil, context: ChannelHandlerContext
    ) {
        let received = ReceivedEvent(
            sequence: event.sequence, runID: event.runID, ivorn: event.ivorn, sentNanos: sentNanos,
            receivedNanos: receivedNanos, remoteAddress: remoteAddress, remotePort: remotePort,
            inWarmup: false, senderClockOffset: event.clockOffset)
        let (recorded, queueHandOver) = loop.value.record(received, warmup: shared.warmup, broker: broker)
        if queueHandOver {
            let (loop, handOver) = (self.loop, shared.handOver)
            context.eventLoop.execute { handOver(loop) }  // after this turn's reads, on this loop
        }
        if shared.csv != nil { EventsCSVWriter.appendRow(recorded, to: &rows) }
        shared.observer?(recorded)
    }

    /// Acks `ivorn`, with the receive and reply times the sender's clock-offset estimate uses
    /// (NTP-style).
    func ack(_ ivorn: String, receivedNanos: Int64, context: ChannelHandlerContext) {
        appendReply(context) { buffer in
            shared.ackWriter.writeFramedAck(
                eventIVORN: ivorn, receivedNanos: receivedNanos, repliedNanos: WallClock.nowNanos(), into: &buffer)
        }
    }

    func reply(_ message: TransportMessage, context: ChannelHandlerContext) {
        appendReply(context) { VTPFraming.writeFrame(message.xml.utf8, into: &$0) }
    }

    /// This read's replies go into one buffer, written once when the read ends (moved out and
    /// back so it is never copied).
    private func appendReply(_ context: ChannelHandlerContext, _ write: (inout ByteBuffer) -> Void) {
        var buffer = replies ?? context.channel.allocator.buffer(capacity: 640)
        replies = nil
        write(&buffer)
        replies = buffer
    }

    /// Sends this read's replies: at once, or once its CSV rows are written.
    func endRead(context: ChannelHandlerContext, thenClose: Bool) {
        let replies = self.replies
        self.replies = nil
        guard let csv = shared.csv else {
            if let replies { context.writeAndFlush(NIOAny(replies), promise: nil) }
            if thenClose { context.close(promise: nil) }
            return
        }
        guard replies != nil || thenClose else { return }
        let (rows, channel) = (self.rows, context.channel)
        self.rows = ""
        // Through the writer even without rows, so replies keep their order.
        csv.write(rows, on: context.eventLoop).whenSuccess { outcome in
            if outcome == .written, let replies { channel.writeAndFlush(replies, promise: nil) }
            // Closed: the receiver is stopping and these rows were not written; no acks.
            if thenClose || outcome == .closed { channel.close(promise: nil) }
        }
    }
}
