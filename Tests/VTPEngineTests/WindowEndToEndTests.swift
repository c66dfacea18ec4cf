import BenchConfig
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Protocol
import VTPEngine
import XCTest

/// `--window` over real loopback sockets: against the receiver, and against a peer that acks each
/// read's events in reverse order and never acks one event's first copy.
final class WindowEndToEndTests: XCTestCase {
    var group: MultiThreadedEventLoopGroup!

    override func setUp() { group = MultiThreadedEventLoopGroup(numberOfThreads: 2) }
    override func tearDown() { try? group.syncShutdownGracefully() }

    private func options(port: Int, events: Int, maxConnect: Int, window: Int, ackTimeout: Double = 30) -> SenderOptions {
        var config = BenchConfiguration()
        config.port = port
        config.events = events
        config.period = 0
        config.maxConnect = maxConnect
        config.mode = .persistent
        config.window = window
        config.reportInterval = 10
        config.ackTimeout = ackTimeout
        config.drainTimeout = 300  // delivery is asserted, not speed
        return SenderOptions(configuration: config)
    }

    func testOneConnectionWithAWindowDeliversEveryEventOnce() throws {
        var config = BenchConfiguration()
        config.port = 0
        config.reportInterval = 10
        let receiver = try VTPReceiver(options: ReceiverOptions(configuration: config), group: group, output: { _ in }, errorOutput: { _ in })
        let port = try XCTUnwrap(receiver.start().wait().port)
        let sender = VTPSender(options: options(port: port, events: 3000, maxConnect: 1, window: 32), group: group, output: { _ in })
        let sent = try sender.start().wait()
        receiver.stop()
        let received = try receiver.done.wait()
        XCTAssertEqual(sent.acked, 3000)
        XCTAssertEqual(sent.failed, 0)
        XCTAssertEqual(sent.errors, 0)
        XCTAssertEqual(sent.window, 32)
        XCTAssertEqual(sent.connectionsOpened, 1)
        XCTAssertEqual(sent.ackRoundTrip.count, 3000, "a round trip per event")
        XCTAssertEqual(sent.clockOffset?.samples, 3000, "a clock sample per event")
        XCTAssertEqual(received.received, 3000)
        XCTAssertEqual(received.unique, 3000)
        XCTAssertEqual(received.duplicates, 0)
        XCTAssertEqual(received.connectionsAccepted, 1)
    }

    /// Acks each read's events in reverse order; never acks the first copy of `withheld`.
    private final class ReversingPeer: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let withheld: String
        let seen: NIOLockedValueBox<(ivorns: [String: Int], largestRead: Int)>
        private let read = NIOLockedValueBox<[ObjectIdentifier: [String]]>([:])

        init(withheld: String, seen: NIOLockedValueBox<(ivorns: [String: Int], largestRead: Int)>) {
            self.withheld = withheld
            self.seen = seen
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .voEvent(let event)? = try? VTPMessage.parse(unwrapInboundIn(data)) else { return }
            read.withLockedValue { $0[ObjectIdentifier(context.channel), default: []].append(event.ivorn) }
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            let ivorns = read.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(context.channel)) ?? [] }
            let copies = seen.withLockedValue { seen in
                seen.largestRead = max(seen.largestRead, ivorns.count)
                return ivorns.map { ivorn in
                    seen.ivorns[ivorn, default: 0] += 1
                    return seen.ivorns[ivorn] ?? 0
                }
            }
            for (ivorn, copy) in zip(ivorns, copies).reversed() where !(ivorn == withheld && copy == 1) {
                let ack = TransportMessage.ack(eventIVORN: ivorn, localIVO: "ivo://peer.test/reverse")
                context.write(wrapOutboundOut(ack.framed(allocator: context.channel.allocator)), promise: nil)
            }
            context.flush()
        }
    }

    func testAcksInAnyOrderAreMatchedAndAnUnackedEventTimesOutAloneAndIsRetried() throws {
        let seen = NIOLockedValueBox<(ivorns: [String: Int], largestRead: Int)>(([:], 0))
        let builder = TestEventBuilder(localIVO: BenchConfiguration().localIVO, runID: "window-test", eventSize: 1024)
        let withheld = builder.ivorn(sequence: 5)
        let server = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(VTPFrameDecoder(maximumFrameSize: 1 << 20)))
                    try channel.pipeline.syncOperations.addHandler(ReversingPeer(withheld: withheld, seen: seen))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        defer { try? server.close().wait() }
        let options = options(port: server.localAddress!.port!, events: 200, maxConnect: 1, window: 8, ackTimeout: 0.5)
        let started = Date()
        let summary = try VTPSender(options: options, group: group, runID: "window-test", output: { _ in }).start().wait()
        XCTAssertEqual(summary.acked, 200, "every event acked, whatever the order of its ack")
        XCTAssertEqual(summary.failed, 0)
        XCTAssertEqual(summary.errorsByCause?["ack timeout"], 1, "only the withheld event timed out")
        XCTAssertEqual(summary.errors, 1)
        XCTAssertGreaterThanOrEqual(summary.retries, 1, "the withheld event (and its window) written again")
        XCTAssertLessThanOrEqual(summary.retries, 8, "at most one window resent")
        XCTAssertEqual(summary.connectionsOpened, 2)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.5, "the timeout is the event's own")
        let (ivorns, largestRead) = seen.withLockedValue { $0 }
        XCTAssertEqual(ivorns.count, 200)
        XCTAssertEqual(ivorns[withheld], 2)
        XCTAssertGreaterThan(largestRead, 1, "events were pipelined")
    }
}
