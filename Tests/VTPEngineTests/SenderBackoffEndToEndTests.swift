import BenchConfig
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import VTPEngine
import XCTest

/// The sender against loopback peers that accept and then misbehave: it must back off
/// rather than reconnect as fast as the peer closes, and say why connections failed.
final class SenderBackoffEndToEndTests: XCTestCase {
    var group: MultiThreadedEventLoopGroup!

    override func setUp() { group = MultiThreadedEventLoopGroup(numberOfThreads: 2) }
    override func tearDown() { try? group.syncShutdownGracefully() }

    /// Accepts, counts, optionally writes `reply`, and closes at once.
    private final class HostileHandler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let accepted: NIOLockedValueBox<Int>
        let reply: [UInt8]?
        init(accepted: NIOLockedValueBox<Int>, reply: [UInt8]?) {
            self.accepted = accepted
            self.reply = reply
        }
        func channelActive(context: ChannelHandlerContext) {
            accepted.withLockedValue { $0 += 1 }
            if let reply {
                // Close a little later: closing with the sender's event unread would reset
                // the connection, and the reset could overtake the reply.
                let channel = context.channel
                channel.writeAndFlush(channel.allocator.buffer(bytes: reply), promise: nil)
                channel.eventLoop.scheduleTask(in: .milliseconds(100)) { channel.close(promise: nil) }
            } else {
                context.close(promise: nil)
            }
        }
    }

    private func run(reply: [UInt8]?, window: Double) throws -> (accepted: Int, summary: SenderSummary) {
        let accepted = NIOLockedValueBox(0)
        let server = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(HostileHandler(accepted: accepted, reply: reply))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        defer { try? server.close().wait() }
        var config = BenchConfiguration()
        config.port = server.localAddress!.port!
        config.events = 5
        config.period = 0
        config.maxConnect = 30
        config.mode = .perEvent
        config.reportInterval = 10
        config.ackTimeout = 10
        config.drainTimeout = window  // the run ends here: every event still failing
        let sender = VTPSender(options: SenderOptions(configuration: config), group: group, output: { _ in })
        let summary = try sender.start().wait()
        return (accepted.withLockedValue { $0 }, summary)
    }

    func testAPeerThatAcceptsAndClosesIsBackedOffFrom() throws {
        let (accepted, summary) = try run(reply: nil, window: 2.5)
        // Without back-off after a successful connect this was ~100 in 2.5 s (222 in 5.8 s);
        // 50 ms doubling to 2 s with one probe at a time gives about 11.
        XCTAssertGreaterThanOrEqual(accepted, 5)
        XCTAssertLessThan(accepted, 40, "\(accepted) connections in 2.5 s for 5 events")
        XCTAssertEqual(summary.acked, 0)
        XCTAssertEqual(summary.failed, 5)
        let causes = try XCTUnwrap(summary.errorsByCause)
        XCTAssertGreaterThan(causes["closed before ack"] ?? 0, 0, "\(causes)")
        XCTAssertEqual(causes.values.reduce(0, +), summary.errors)
        let line = SenderSummaryText.lines(summary)[0]
        XCTAssertTrue(line.contains("connection errors (closed before ack "), line)
    }

    func testRefusedConnectsAreCountedAsRefused() throws {
        // A port that was just free: nothing listens there, so connects are refused.
        let probe = try ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).wait()
        let port = probe.localAddress!.port!
        try probe.close().wait()
        var config = BenchConfiguration()
        config.port = port
        config.events = 2
        config.period = 0
        config.reportInterval = 10
        config.drainTimeout = 0.5
        let summary = try VTPSender(options: SenderOptions(configuration: config), group: group, output: { _ in })
            .start().wait()
        XCTAssertEqual(summary.failed, 2)
        XCTAssertGreaterThan(summary.errorsByCause?["refused"] ?? 0, 0, "\(String(describing: summary.errorsByCause))")
        XCTAssertTrue(SenderSummaryText.lines(summary)[0].contains("connection errors (refused "))
    }

    func testAPeerThatAnswersGarbageIsBackedOffFromAndCountedAsBadReply() throws {
        // A well-formed frame (4-byte length) holding something that is not VTP.
        let body = Array("HTTP/1.1 400 Bad Request\r\n\r\n".utf8)
        let frame = withUnsafeBytes(of: UInt32(body.count).bigEndian) { Array($0) } + body
        let (accepted, summary) = try run(reply: frame, window: 2.5)
        XCTAssertLessThan(accepted, 40, "\(accepted) connections in 2.5 s for 5 events")
        let causes = try XCTUnwrap(summary.errorsByCause)
        XCTAssertGreaterThan(causes["bad reply"] ?? 0, 0, "\(causes)")
    }
}
