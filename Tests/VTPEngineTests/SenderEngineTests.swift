import BenchConfig
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Protocol
@testable import VTPEngine
import XCTest

/// The sender engine on loopback: fail fast when the receiver was never reached, keep
/// retrying one that went away, count what was and was not sent, and run on any number of
/// event loops (handlers on the control loop itself and on others).
final class SenderEngineTests: XCTestCase {
    private var groups: [MultiThreadedEventLoopGroup] = []

    override func tearDown() {
        for group in groups { try? group.syncShutdownGracefully() }
        groups = []
    }

    private func makeGroup(threads: Int = 2) -> MultiThreadedEventLoopGroup {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        groups.append(group)
        return group
    }

    /// A loopback port nothing listens on: connects to it are refused.
    private func closedPort(_ group: EventLoopGroup) throws -> Int {
        let probe = try ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).wait()
        let port = probe.localAddress!.port!
        try probe.close().wait()
        return port
    }

    /// A minimal VTP receiver: acks every event (kept apart from VTPReceiver on purpose).
    private final class Acker: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .voEvent(let event)? = try? VTPMessage.parse(unwrapInboundIn(data)) else {
                return context.close(promise: nil)
            }
            let ack = TransportMessage.ack(eventIVORN: event.ivorn, localIVO: "ivo://engine.test/receiver")
            context.writeAndFlush(wrapOutboundOut(ack.framed(allocator: context.channel.allocator)), promise: nil)
        }
    }

    private func receiver(_ group: EventLoopGroup) throws -> (Channel, Int) {
        let server = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(VTPFrameDecoder(maximumFrameSize: 1 << 20)))
                    try channel.pipeline.syncOperations.addHandler(Acker())
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        return (server, server.localAddress!.port!)
    }

    private func configuration(port: Int, events: Int, period: Double) -> BenchConfiguration {
        var c = BenchConfiguration()
        c.port = port
        c.events = events
        c.period = period
        c.reportInterval = 10
        c.drainTimeout = 300
        return c
    }

    func testAReceiverNeverReachedStopsTheRunAfterTheConnectTimeoutNamingTheCause() throws {
        let group = makeGroup()
        var c = configuration(port: try closedPort(group), events: 5, period: 1)
        c.connectTimeout = 0.5
        let started = Date()
        XCTAssertThrowsError(try VTPSender(options: SenderOptions(configuration: c), group: group, output: { _ in }).start().wait()) {
            guard case .unreachable(_, let port, let waited, let cause)? = $0 as? SenderRunError else { return XCTFail("\($0)") }
            XCTAssertEqual(port, c.port)
            XCTAssertEqual(waited, 0.5)
            XCTAssertEqual(cause, "connection refused")
            XCTAssertTrue("\($0)".hasPrefix("no connection to 127.0.0.1:\(c.port) within 500 ms: connection refused"), "\($0)")
        }
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.5, "it tried for the whole connect timeout")
    }

    func testAnUnknownHostIsNamed() throws {
        let group = makeGroup()
        var c = configuration(port: 8098, events: 2, period: 0)
        c.host = "nosuch.invalid"
        c.connectTimeout = 0.5
        XCTAssertThrowsError(try VTPSender(options: SenderOptions(configuration: c), group: group, output: { _ in }).start().wait()) {
            let text = "\($0)"
            XCTAssertTrue(text.contains("unknown host nosuch.invalid"), text)
            XCTAssertFalse(text.contains("SocketAddressError") || text.contains("NIOConnectionError") || text.contains("error -"), text)
        }
    }

    func testAReceiverThatWasReachedAndWentAwayIsRetriedUntilTheDrainTimeout() throws {
        let group = makeGroup()
        let (receiver, port) = try receiver(group)
        var c = configuration(port: port, events: 40, period: 2)
        c.connectTimeout = 0.3
        c.drainTimeout = 1
        let lines = NIOLockedValueBox<[String]>([])
        let sender = VTPSender(
            options: SenderOptions(configuration: c), group: group, output: { l in lines.withLockedValue { $0.append(l) } })
        let finished = sender.start()
        Thread.sleep(forTimeInterval: 0.5)
        try receiver.close().wait()  // no longer listening: connects are refused
        let summary = try finished.wait()  // a summary, not SenderRunError: it was reachable
        XCTAssertGreaterThan(summary.acked, 0)
        XCTAssertGreaterThan(summary.failed, 0)
        XCTAssertEqual(summary.acked + summary.failed + (summary.notSent ?? 0), 40)
        XCTAssertGreaterThan(summary.errors, 0)
        XCTAssertGreaterThanOrEqual(summary.connectionsOpened, summary.acked, "only connections that opened")
        XCTAssertTrue(lines.withLockedValue { $0 }.contains { $0.contains("drain timeout") })
    }

    func testStoppingEarlyCountsUnscheduledEventsAsNotSentAndEmptyStatisticsAsNull() throws {
        let group = makeGroup()
        var c = configuration(port: try closedPort(group), events: 100, period: 10)
        c.connectTimeout = 60
        let sender = VTPSender(options: SenderOptions(configuration: c), group: group, output: { _ in })
        let finished = sender.start()
        Thread.sleep(forTimeInterval: 0.3)
        sender.stop()
        let summary = try finished.wait()
        let notSent = try XCTUnwrap(summary.notSent)
        XCTAssertGreaterThan(notSent, 50, "most of the 10 s schedule never came")
        XCTAssertEqual(summary.failed + notSent, 100)
        XCTAssertEqual(summary.connectionsOpened, 0, "refused connects are errors, not openings")
        XCTAssertGreaterThan(summary.errorsByCause?["refused"] ?? 0, 0)
        XCTAssertTrue(SenderSummaryText.lines(summary)[0].contains(", \(notSent) not sent;"), SenderSummaryText.lines(summary)[0])
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(summary)) as? [String: Any])
        XCTAssertTrue(json["ack_rtt_s"] is NSNull, "not measured is null, not zeros: \(json["ack_rtt_s"] ?? "absent")")
        XCTAssertTrue(json["clock_offset_s"] is NSNull)
        XCTAssertEqual(json["not_sent"] as? Int, notSent)
        XCTAssertEqual(try JSONDecoder().decode(SenderSummary.self, from: JSONEncoder().encode(summary)), summary)
    }

    func testOneLoopAndManyLoopsDeliverEveryEvent() throws {
        // One loop: every handler lives on the control loop (messages handled at once);
        // four loops: most handlers post across loops.
        for threads in [1, 4] {
            let group = makeGroup(threads: threads)
            let (receiver, port) = try receiver(group)
            for mode in [SenderMode.perEvent, .persistent] {
                var c = configuration(port: port, events: 300, period: 0.3)
                c.mode = mode
                c.maxConnect = 8
                c.eventSize = 10
                let summary = try VTPSender(options: SenderOptions(configuration: c), group: group, output: { _ in })
                    .start().wait()
                XCTAssertEqual(summary.acked, 300, "\(threads) loops, \(mode)")
                XCTAssertEqual(summary.failed, 0)
                XCTAssertEqual(summary.notSent, 0)
                XCTAssertEqual(summary.ackRoundTrip.count, 300)
                let bytes = try XCTUnwrap(summary.eventBytes)
                XCTAssertGreaterThan(bytes.min, 600, "the size sent, not the 10 bytes asked for")
                XCTAssertGreaterThanOrEqual(bytes.max, bytes.min)
            }
            try receiver.close().wait()
        }
    }

    func testErrorTextHasNoTypeNames() {
        XCTAssertEqual(ErrorText.describe(IOError(errnoCode: ECONNREFUSED, reason: "connect")), "connection refused")
        XCTAssertEqual(ErrorText.describe(ChannelError.connectTimeout(.milliseconds(1500))), "connect timed out after 1.50 s")
        XCTAssertEqual(ErrorText.describe(ChannelError.eof), "connection closed by the peer")
        XCTAssertFalse(ErrorText.describe(ChannelError.inappropriateOperationForState).contains("ChannelError"))
        XCTAssertEqual(ErrorText.connectFailure(IOError(errnoCode: ECONNREFUSED, reason: "connect")), .refused)
        XCTAssertEqual(ErrorText.connectFailure(ChannelError.connectTimeout(.seconds(1))), .connectTimeout)
        // A receiver killed with our handshake in its queue resets the connect: counted as reset.
        XCTAssertEqual(ErrorText.connectFailure(IOError(errnoCode: ECONNRESET, reason: "connect")), .closedBeforeAck)
        XCTAssertEqual(FailoverCause(ErrorText.connectFailure(IOError(errnoCode: ECONNRESET, reason: "connect"))), .reset)
        XCTAssertEqual(
            SenderEngine.classify(SenderConnectionError.connectFailed(IOError(errnoCode: ECONNREFUSED, reason: "connect"))),
            .refused)
    }
}
