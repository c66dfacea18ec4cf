#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOEmbedded
import XCTest

@testable import AcceptGuard

/// Accept failures from running out of descriptors: one line when they start, one when they
/// end, nothing in between, and accepting pauses (auto-read off) instead of spinning.
final class AcceptGuardTests: XCTestCase {
    final class Lines: @unchecked Sendable {
        // Only touched on the EmbeddedChannel's thread (the test's): no lock needed.
        var lines: [String] = []
    }

    private func autoRead(_ channel: EmbeddedChannel) -> Bool? {
        channel.options.last { $0.option is ChannelOptions.Types.AutoReadOption }?.value as? Bool
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
        // A listener at its limit accepts one, fails again: still the same episode.
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        try channel.writeInbound(EmbeddedChannel())
        channel.pipeline.fireErrorCaught(IOError(errnoCode: EMFILE, reason: "accept"))
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        XCTAssertEqual(lines.lines.count, 1, "\(lines.lines)")
        // Two quiet seconds end it.
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        XCTAssertEqual(lines.lines.count, 2, "\(lines.lines)")
        XCTAssertTrue(lines.lines[1].hasPrefix("test-listener: accepting connections again after 1001 failed accepts over 1 s"), lines.lines[1])
        channel.embeddedEventLoop.advanceTime(by: .seconds(10))
        XCTAssertEqual(lines.lines.count, 2, "no episode, nothing to say")
        _ = try channel.readInbound(as: EmbeddedChannel.self)
    }

    func testAcceptingPausesAfterAFailureAndResumesAfterTheBackOff() throws {
        let channel = EmbeddedChannel()
        try AcceptGuard.install(on: channel, name: "x") { _ in }
        XCTAssertNil(autoRead(channel), "untouched while accepting works")
        channel.pipeline.fireErrorCaught(IOError(errnoCode: EMFILE, reason: "accept"))
        XCTAssertEqual(autoRead(channel), false, "off: the listening socket leaves epoll")
        channel.embeddedEventLoop.advanceTime(by: AcceptGuard.backoff - .milliseconds(1))
        XCTAssertEqual(autoRead(channel), false)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        XCTAssertEqual(autoRead(channel), true, "on again once the back-off is over")
        // Other errors (a connection reset before accept) pass on and pause nothing.
        channel.pipeline.fireErrorCaught(IOError(errnoCode: ECONNABORTED, reason: "accept"))
        XCTAssertEqual(autoRead(channel), true)
        XCTAssertThrowsError(try channel.throwIfErrorCaught())
    }
}
