#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOEmbedded
import XCTest

@testable import AcceptGuard

/// Accept failures from running out of descriptors: one line when they start, one when they
/// end, nothing in between, and accepting pauses instead of spinning.
final class AcceptGuardTests: XCTestCase {
    final class Lines: @unchecked Sendable {
        // Only touched on the EmbeddedChannel's thread (the test's): no lock needed.
        var lines: [String] = []
    }

    func testAnEpisodeIsReportedOnceAndItsEndOnce() throws {
        let lines = Lines()
        let channel = EmbeddedChannel()
        try AcceptGuard.install(on: channel, name: "test-listener") { lines.lines.append($0) }
        for _ in 0..<1000 { channel.pipeline.fireErrorCaught(IOError(errnoCode: EMFILE, reason: "accept")) }
        XCTAssertEqual(lines.lines.count, 1, "\(lines.lines)")
        XCTAssertTrue(lines.lines[0].hasPrefix("test-listener: cannot accept connections: the process's open-file limit"), lines.lines[0])
        XCTAssertTrue(lines.lines[0].contains("ulimit -n"), lines.lines[0])
        // The errors are handled, not passed on to the channel's end.
        XCTAssertNoThrow(try channel.throwIfErrorCaught())
        try channel.writeInbound(EmbeddedChannel())
        XCTAssertEqual(lines.lines.count, 2)
        XCTAssertTrue(lines.lines[1].hasPrefix("test-listener: accepting connections again after 1000 failed accepts"), lines.lines[1])
        try channel.writeInbound(EmbeddedChannel())
        XCTAssertEqual(lines.lines.count, 2, "no episode, nothing to say")
        _ = try channel.readInbound(as: EmbeddedChannel.self)
    }

    func testAcceptingPausesAfterAFailure() throws {
        let channel = EmbeddedChannel()
        final class ReadCounter: ChannelOutboundHandler {
            typealias OutboundIn = Never
            var reads = 0
            func read(context: ChannelHandlerContext) {
                reads += 1
                context.read()
            }
        }
        let counter = ReadCounter()
        try channel.pipeline.syncOperations.addHandler(counter)
        try AcceptGuard.install(on: channel, name: "x") { _ in }
        channel.read()
        XCTAssertEqual(counter.reads, 1, "reads pass while accepting works")
        channel.pipeline.fireErrorCaught(IOError(errnoCode: EMFILE, reason: "accept"))
        channel.read()
        XCTAssertEqual(counter.reads, 1, "no read during the back-off")
        // NIO's back-off takes its deadline from the real clock; the embedded loop's starts at 0.
        channel.embeddedEventLoop.advanceTime(to: .now() + AcceptGuard.backoff + .seconds(1))
        XCTAssertEqual(counter.reads, 2, "the read happens once the back-off is over")
        // Other errors (a connection reset before accept) cause no pause.
        channel.pipeline.fireErrorCaught(IOError(errnoCode: ECONNABORTED, reason: "accept"))
        channel.read()
        XCTAssertEqual(counter.reads, 3)
    }
}
