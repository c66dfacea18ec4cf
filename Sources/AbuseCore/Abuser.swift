#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import Protocol
import Synchronization

/// What one abuse run does to a listener. Every kind runs at once, so a listener is tested
/// against all of them together (and a real sender beside them, see scripts/abuse).
public struct AbusePlan: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// Connections that never send a byte (slowloris).
    public var silent = 0
    /// Connections that send a real event frame one byte a second.
    public var trickle = 0
    /// Connections that announce a frame of `stalledFrameBytes`, send 1 KiB of it, then nothing.
    public var stalledFrames = 0
    public var stalledFrameBytes = VTPFraming.defaultMaximumFrameSize
    /// Connections opened as fast as possible and held: past the target's descriptor limit.
    public var flood = 0
    /// Connections per second that send part of a frame and close (half of them with a reset).
    public var disconnectsPerSecond = 0
    /// Pace of the silent, trickle and stalled connections (the flood is not paced).
    public var connectsPerSecond = 2_000

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Connections held open at once when everything is up.
    public var heldConnections: Int { silent + trickle + stalledFrames + flood }
}

/// Counts so far; every field only grows.
public struct AbuseReport: Sendable, Equatable, Codable {
    public var opened = 0
    /// Connects that failed (refused, reset, timed out: the target's backlog full).
    public var failed = 0
    /// Held connections the target closed (its idle timeout, or a framing error).
    public var closedByTarget = 0
    public var bytesSent = 0
    /// Connections closed by us mid-frame.
    public var disconnects = 0

    enum CodingKeys: String, CodingKey {
        case opened, failed, disconnects
        case closedByTarget = "closed_by_target"
        case bytesSent = "bytes_sent"
    }

    public init() {}
}

/// Runs an `AbusePlan` against a listener with NIO clients, until `stop()`.
public final class Abuser: Sendable {
    public let plan: AbusePlan
    private let group: EventLoopGroup
    private let counters = Counters()
    /// Every held connection, to close at the end; appended from the loops that open them.
    private let held = Mutex<[Channel]>([])
    private let tasks = Mutex<[RepeatedTask]>([])
    /// One real event frame: what the trickle and the disconnects send (parts of).
    private let frame: [UInt8]

    final class Counters: Sendable {
        let opened = Atomic<Int>(0)
        let failed = Atomic<Int>(0)
        let closedByTarget = Atomic<Int>(0)
        let bytesSent = Atomic<Int>(0)
        let disconnects = Atomic<Int>(0)
        /// Set by `stop()`: closes from then on are ours, not the target's.
        let stopping = Atomic<Bool>(false)
    }

    public init(plan: AbusePlan, group: EventLoopGroup) {
        self.plan = plan
        self.group = group
        let builder = TestEventBuilder(localIVO: "ivo://vtpbench.test/abuse", eventSize: 1024)
        var buffer = ByteBufferAllocator().buffer(capacity: 2048)
        builder.writeFramedDocument(sequence: 0, sentNanos: WallClock.nowNanos(), into: &buffer)
        frame = Array(buffer.readableBytesView)
    }

    public var report: AbuseReport {
        var report = AbuseReport()
        report.opened = counters.opened.load(ordering: .relaxed)
        report.failed = counters.failed.load(ordering: .relaxed)
        report.closedByTarget = counters.closedByTarget.load(ordering: .relaxed)
        report.bytesSent = counters.bytesSent.load(ordering: .relaxed)
        report.disconnects = counters.disconnects.load(ordering: .relaxed)
        return report
    }

    public func start() {
        let loop = group.next()
        // The flood first and unpaced: it is meant to hit the limit.
        for _ in 0..<plan.flood { open(.silent) }
        var pending: [Kind] =
            Array(repeating: .silent, count: plan.silent) + Array(repeating: .trickle, count: plan.trickle)
            + Array(repeating: .stalled, count: plan.stalledFrames)
        pending.reverse()
        let perTick = max(1, plan.connectsPerSecond / 100)
        let queue = NIOLoopBoundBox.makeBoxSendingValue(pending, eventLoop: loop)
        loop.execute {
            let task = loop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(10)) { task in
                for _ in 0..<perTick {
                    guard let kind = queue.value.popLast() else { return task.cancel() }
                    self.open(kind)
                }
            }
            self.tasks.withLock { $0.append(task) }
            if self.plan.disconnectsPerSecond > 0 {
                let interval = TimeAmount.nanoseconds(1_000_000_000 / Int64(self.plan.disconnectsPerSecond))
                let disconnects = loop.scheduleRepeatedTask(initialDelay: .zero, delay: interval) { _ in
                    self.open(.disconnect)
                }
                self.tasks.withLock { $0.append(disconnects) }
            }
        }
    }

    /// Closes every connection; returns the final counts.
    public func stop() async -> AbuseReport {
        counters.stopping.store(true, ordering: .relaxed)
        for task in tasks.withLock({ $0 }) { task.cancel() }
        let channels = held.withLock { channels in
            defer { channels.removeAll() }
            return channels
        }
        for channel in channels { try? await channel.close() }
        return report
    }

    enum Kind { case silent, trickle, stalled, disconnect }

    private func open(_ kind: Kind) {
        guard !counters.stopping.load(ordering: .relaxed) else { return }
        let counters = counters
        let frame = frame
        let stalledBytes = plan.stalledFrameBytes
        ClientBootstrap(group: group)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        AbusiveConnection(kind: kind, frame: frame, stalledBytes: stalledBytes, counters: counters))
                }
            }
            .connect(host: plan.host, port: plan.port)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    counters.opened.add(1, ordering: .relaxed)
                    if kind != .disconnect { self.held.withLock { $0.append(channel) } }
                    if counters.stopping.load(ordering: .relaxed) { channel.close(promise: nil) }
                case .failure:
                    counters.failed.add(1, ordering: .relaxed)
                }
            }
    }
}

/// One abusive connection, on its channel's loop.
final class AbusiveConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let kind: Abuser.Kind
    private let frame: [UInt8]
    private let stalledBytes: Int
    private let counters: Abuser.Counters
    private var next = 0
    private var trickle: RepeatedTask?
    private var closingOurselves = false

    init(kind: Abuser.Kind, frame: [UInt8], stalledBytes: Int, counters: Abuser.Counters) {
        self.kind = kind
        self.frame = frame
        self.stalledBytes = stalledBytes
        self.counters = counters
    }

    func channelActive(context: ChannelHandlerContext) {
        switch kind {
        case .silent:
            break
        case .trickle:
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            trickle = context.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
                self.sendNextByte(loopBound.value)
            }
        case .stalled:
            var buffer = context.channel.allocator.buffer(capacity: 1028)
            buffer.writeInteger(UInt32(clamping: stalledBytes), endianness: .big)
            buffer.writeBytes(frame.dropFirst(4).prefix(1024))
            write(buffer, context: context)
        case .disconnect:
            // Somewhere inside the frame: the header alone, part of it, or all but its last byte.
            let cut = Int.random(in: 1..<frame.count)
            write(ByteBuffer(bytes: frame.prefix(cut)), context: context)
            closingOurselves = true
            if Bool.random() {
                // SO_LINGER 0: the close sends a reset, not a FIN.
                _ = (context.channel as? SocketOptionProvider)?.setSoLinger(linger(l_onoff: 1, l_linger: 0))
            }
            counters.disconnects.add(1, ordering: .relaxed)
            context.close(promise: nil)
        }
    }

    private func sendNextByte(_ context: ChannelHandlerContext) {
        write(ByteBuffer(bytes: [frame[next]]), context: context)
        next = (next + 1) % frame.count
    }

    private func write(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        counters.bytesSent.add(buffer.readableBytes, ordering: .relaxed)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}  // acks to a finished trickle: dropped

    func channelInactive(context: ChannelHandlerContext) {
        trickle?.cancel()
        if !closingOurselves && !counters.stopping.load(ordering: .relaxed) {
            counters.closedByTarget.add(1, ordering: .relaxed)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
