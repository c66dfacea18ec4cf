import BenchConfig
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Protocol
import VTPEngine
import XCTest

/// The receiver's idle timeout counts whole frames: a peer trickling a frame a byte at a time
/// holds a descriptor as long as a silent one does, and no longer.
final class ReceiverSlowlorisTests: XCTestCase {
    /// Counts how the connection ended.
    private final class Watcher: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let closed = NIOLockedValueBox(false)
        func channelInactive(context: ChannelHandlerContext) {
            closed.withLockedValue { $0 = true }
            context.fireChannelInactive()
        }
    }

    func testATricklingPeerIsClosedAfterTheIdleTimeoutAndAnEventSenderIsNot() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        var config = BenchConfiguration()
        config.port = 0
        config.reportInterval = 60
        var options = ReceiverOptions(configuration: config)
        options.idleTimeout = 1
        let errors = NIOLockedValueBox<[String]>([])
        let receiver = try VTPReceiver(
            options: options, group: group, output: { _ in }, errorOutput: { line in errors.withLockedValue { $0.append(line) } })
        let port = try receiver.start().wait().port!
        defer {
            receiver.stop()
            _ = try? receiver.done.wait()
        }
        func connect() throws -> (Channel, Watcher) {
            let watcher = Watcher()
            let channel = try ClientBootstrap(group: group).channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(watcher) }
            }.connect(host: "127.0.0.1", port: port).wait()
            return (channel, watcher)
        }
        let builder = TestEventBuilder(localIVO: "ivo://t/sender", eventSize: 0)
        var frame = ByteBuffer()
        builder.writeFramedDocument(sequence: 0, sentNanos: WallClock.nowNanos(), into: &frame)
        let (trickler, trickled) = try connect()
        let (sender, sending) = try connect()
        // Four seconds: a byte every 100 ms to one, a whole event every 300 ms to the other.
        let start = Date()
        var next = 0
        var tick = 0
        var sequence: UInt64 = 1
        while Date().timeIntervalSince(start) < 4 {
            tick += 1
            if trickler.isActive {
                trickler.writeAndFlush(ByteBuffer(bytes: [frame.getInteger(at: next % 40, as: UInt8.self)!]), promise: nil)
                next += 1
            }
            if tick % 3 == 0 {
                var event = ByteBuffer()
                builder.writeFramedDocument(sequence: sequence, sentNanos: WallClock.nowNanos(), into: &event)
                sequence += 1
                sender.writeAndFlush(event, promise: nil)
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        XCTAssertTrue(trickled.closed.withLockedValue { $0 }, "the trickle never completed a frame: closed")
        XCTAssertFalse(sending.closed.withLockedValue { $0 }, "whole events keep a connection open")
        XCTAssertTrue(errors.withLockedValue { $0 }.contains { $0.hasPrefix("closing idle connection") }, "\(errors)")
        sender.close(promise: nil)
    }
}
