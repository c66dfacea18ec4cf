import BenchConfig
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Protocol
import VTPEngine
import XCTest

/// Sender → receiver over real loopback sockets.
final class EndToEndTests: XCTestCase {
    var group: MultiThreadedEventLoopGroup!
    /// The sender runs on its own loops, as it does in its own process: sharing the receiver's
    /// two threads stalled deliveries under ThreadSanitizer (886 of 2,000 acked after 300 s).
    var senderGroup: MultiThreadedEventLoopGroup!
    let lines = NIOLockedValueBox<[String]>([])
    let errors = NIOLockedValueBox<[String]>([])

    override func setUp() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        senderGroup = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    }
    override func tearDown() {
        try? senderGroup.syncShutdownGracefully()
        try? group.syncShutdownGracefully()
    }

    private func makeReceiver(port: Int = 0, configure: (inout ReceiverOptions) -> Void = { _ in }) throws -> (VTPReceiver, Int) {
        var config = BenchConfiguration()
        config.port = port
        config.reportInterval = 0.25
        var options = ReceiverOptions(configuration: config)
        configure(&options)
        let receiver = try VTPReceiver(
            options: options, group: group, output: { [lines] l in lines.withLockedValue { $0.append(l) } },
            errorOutput: { [errors] l in errors.withLockedValue { $0.append(l) } })
        let address = try receiver.start().wait()
        return (receiver, address.port!)
    }

    private func senderOptions(port: Int, events: Int, period: Double, maxConnect: Int, mode: SenderMode) -> SenderOptions {
        var config = BenchConfiguration()
        config.port = port
        config.events = events
        config.period = period
        config.maxConnect = maxConnect
        config.mode = mode
        config.reportInterval = 0.5
        // Long enough that a loaded machine finishes the work instead of giving up on it:
        // these tests assert delivery, not speed.
        config.drainTimeout = 300
        config.ackTimeout = 30
        return SenderOptions(configuration: config)
    }

    private func runSender(_ options: SenderOptions) throws -> SenderSummary {
        let sender = VTPSender(options: options, group: senderGroup, output: { _ in })
        return try sender.start().wait()
    }

    private func assertDelivered(
        _ sent: SenderSummary, _ received: ReceiverSummary, events: Int, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(sent.acked, events, "every event acked", file: file, line: line)
        XCTAssertEqual(sent.failed, 0, file: file, line: line)
        XCTAssertEqual(sent.nakked, 0, file: file, line: line)
        XCTAssertEqual(sent.ackRoundTrip.count, events, file: file, line: line)
        XCTAssertEqual(received.received, events, "every event received once", file: file, line: line)
        XCTAssertEqual(received.unique, events, file: file, line: line)
        XCTAssertEqual(received.duplicates, 0, file: file, line: line)
        XCTAssertEqual(received.missing, 0, file: file, line: line)
        XCTAssertEqual(received.latency.count, events, file: file, line: line)
        XCTAssertGreaterThan(received.latency.min, 0, "latency positive", file: file, line: line)
        // What physics guarantees, whatever the load: no event arrives before it was scheduled,
        // and none takes longer than the whole run (its timestamp is the scheduled moment).
        XCTAssertLessThanOrEqual(
            received.latency.max, sent.durationSeconds + 1, "latency within the run", file: file, line: line)
        XCTAssertGreaterThan(sent.ackRoundTrip.min, 0, file: file, line: line)
    }

    func testPerEventDeliversEveryEventOnceOverEightConnections() throws {
        let csv = FileManager.default.temporaryDirectory.appendingPathComponent("vtp-events-\(UUID()).csv").path
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let (receiver, port) = try makeReceiver { $0.eventsCSVPath = csv }
        let sent = try runSender(senderOptions(port: port, events: 2000, period: 1, maxConnect: 8, mode: .perEvent))
        receiver.stop()
        let received = try receiver.done.wait()
        assertDelivered(sent, received, events: 2000)
        XCTAssertEqual(sent.connectionsOpened, 2000, "one connection per event")
        XCTAssertEqual(received.connectionsAccepted, 2000)

        let rows = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").dropFirst()
        XCTAssertEqual(rows.count, 2000)
        let sequences = Set(rows.map { $0.split(separator: ",")[0] })
        XCTAssertEqual(sequences.count, 2000)
        for row in rows.prefix(10) {
            let f = row.split(separator: ",")
            XCTAssertEqual(Int64(f[3])! - Int64(f[2])!, Int64((Double(f[4])! * 1e9).rounded()), "latency = received − sent")
        }
    }

    func testPersistentDeliversEveryEventOnceOverEightConnections() throws {
        let (receiver, port) = try makeReceiver()
        let sent = try runSender(senderOptions(port: port, events: 2000, period: 1, maxConnect: 8, mode: .persistent))
        receiver.stop()
        let received = try receiver.done.wait()
        assertDelivered(sent, received, events: 2000)
        XCTAssertEqual(sent.connectionsOpened, 8)
        XCTAssertEqual(received.connectionsAccepted, 8)
        // One host, one clock: the true offset is 0, so the estimate must be within its bound.
        let clock = try XCTUnwrap(sent.clockOffset)
        XCTAssertEqual(clock.samples, 2000)
        XCTAssertLessThanOrEqual(abs(clock.offset), clock.errorBound + 1e-9)
        XCTAssertLessThan(clock.errorBound, 0.005, "the tightest loopback exchange is well under 10 ms")
        XCTAssertNotNil(received.clockOffset, "the receiver learns the estimate from later events")
    }

    func testReportLinesKeepTheOriginalShape() throws {
        let (receiver, port) = try makeReceiver()
        _ = try runSender(senderOptions(port: port, events: 50, period: 0.6, maxConnect: 2, mode: .persistent))
        Thread.sleep(forTimeInterval: 0.3)
        receiver.stop()
        _ = try receiver.done.wait()
        let headlines = lines.withLockedValue { $0 }.filter { $0.hasPrefix("Received ") && !$0.contains("n/a") }
        XCTAssertFalse(headlines.isEmpty)
        let pattern = try NSRegularExpression(pattern: #"^Received \d+ events; Latency \d+\.\d{6}/\d+\.\d{6}/\d+\.\d{6}s \(min/max/avg\)$"#)
        for line in headlines {
            XCTAssertNotNil(pattern.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)), line)
        }
        XCTAssertTrue(headlines.last!.hasPrefix("Received 50 events"))
    }

    func testWarmupEventsAreCountedButLeftOutOfTheStatistics() throws {
        let (receiver, port) = try makeReceiver { $0.warmupSeconds = 0.5 }
        _ = try runSender(senderOptions(port: port, events: 200, period: 1, maxConnect: 2, mode: .persistent))
        receiver.stop()
        let received = try receiver.done.wait()
        XCTAssertEqual(received.received, 200)
        XCTAssertGreaterThan(received.warmupExcluded, 60, "about half the events fall in the first 0.5 s")
        XCTAssertLessThan(received.warmupExcluded, 140)
        XCTAssertEqual(received.latency.count, 200 - received.warmupExcluded)
    }

    func testAReceiverThatStartsLateLosesNothing() throws {
        // Reserve a free port, then release it so nothing listens there yet.
        let probe = try ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).wait()
        let port = probe.localAddress!.port!
        try probe.close().wait()

        let sender = VTPSender(
            options: senderOptions(port: port, events: 300, period: 0.5, maxConnect: 8, mode: .perEvent),
            group: group, output: { _ in })
        let finished = sender.start()
        Thread.sleep(forTimeInterval: 1.2)
        let (receiver, _) = try makeReceiver(port: port)
        let sent = try finished.wait()
        receiver.stop()
        let received = try receiver.done.wait()
        assertDelivered(sent, received, events: 300)
        XCTAssertGreaterThan(sent.errors, 0, "the refused connections were counted")
        XCTAssertGreaterThan(sent.maxBacklog, 100, "events queued while the receiver was down")
        XCTAssertGreaterThan(received.latency.max, 0.5, "queued time counts as latency")
    }

    func testSenderGivesUpAfterTheDrainTimeoutAndCountsFailures() throws {
        let probe = try ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).wait()
        let port = probe.localAddress!.port!
        try probe.close().wait()
        var options = senderOptions(port: port, events: 20, period: 0.1, maxConnect: 2, mode: .perEvent)
        options.drainTimeout = 0.5
        let sent = try runSender(options)
        XCTAssertEqual(sent.acked, 0)
        XCTAssertEqual(sent.failed, 20, "unreachable events are failed, not silently dropped")
        XCTAssertEqual(sent.backlogEnd, 20)
    }

    func testGarbageAndOversizedFramesAreClosedWhileOthersContinue() throws {
        let (receiver, port) = try makeReceiver()
        let sender = VTPSender(
            options: senderOptions(port: port, events: 400, period: 1, maxConnect: 4, mode: .persistent),
            group: group, output: { _ in })
        let finished = sender.start()

        // HTTP on a VTP port: "GET " read as a length is ~1.2 GB.
        let garbage = try RawClient.connect(group: group, port: port)
        try garbage.send(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        var oversized: [UInt8] = [0x7F, 0xFF, 0xFF, 0xFF]
        oversized += Array(repeating: 0x41, count: 64)
        let big = try RawClient.connect(group: group, port: port)
        try big.send(oversized)
        let zero = try RawClient.connect(group: group, port: port)
        try zero.send([0, 0, 0, 0])

        // A well-framed payload that is not XML gets a nak, and the connection stays usable.
        let polite = try RawClient.connect(group: group, port: port)
        var frame = ByteBuffer()
        VTPFraming.writeFrame(Array("this is not XML".utf8), into: &frame)
        try polite.send(Array(frame.readableBytesView))
        let nak = try polite.readFrame()
        guard case .transport(let reply) = try VTPMessage.parse(nak) else { return XCTFail("no transport reply") }
        XCTAssertEqual(reply.role, .nak)
        XCTAssertTrue(reply.result?.contains("malformed XML") ?? false, reply.result ?? "")
        let event = TestEventBuilder(localIVO: "ivo://vtpbench.test/raw", eventSize: 0)
            .document(sequence: 0, sentNanos: WallClock.nowNanos())
        var eventFrame = ByteBuffer()
        VTPFraming.writeFrame(Array(event.utf8), into: &eventFrame)
        try polite.send(Array(eventFrame.readableBytesView))
        guard case .transport(let ack) = try VTPMessage.parse(try polite.readFrame()) else { return XCTFail() }
        XCTAssertEqual(ack.role, .ack)

        for client in [garbage, big, zero] { XCTAssertTrue(try client.waitForClose(), "receiver closed the bad connection") }
        XCTAssertFalse(polite.isClosed)
        polite.close()
        let sent = try finished.wait()
        receiver.stop()
        let received = try receiver.done.wait()
        XCTAssertEqual(sent.acked, 400, "the sender's connections were untouched")
        XCTAssertEqual(received.framingErrors, 3)
        XCTAssertEqual(received.naks, 1)
        XCTAssertEqual(received.received, 401)
        XCTAssertTrue(errors.withLockedValue { $0 }.contains { $0.contains("exceeds the maximum") })
    }
}

/// A bare TCP client for feeding the receiver bytes no sender would write.
final class RawClient: Sendable {
    private let channel: Channel
    private let inbound: NIOLockedValueBox<ByteBuffer>

    final class Collector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let inbound: NIOLockedValueBox<ByteBuffer>
        init(_ inbound: NIOLockedValueBox<ByteBuffer>) { self.inbound = inbound }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            _ = inbound.withLockedValue { $0.writeBuffer(&bytes) }
        }
        func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    }

    /// Also the accepted end of a test broker's connection (`RawBroker`).
    init(channel: Channel, inbound: NIOLockedValueBox<ByteBuffer>) {
        self.channel = channel
        self.inbound = inbound
    }

    static func connect(group: EventLoopGroup, port: Int) throws -> RawClient {
        let inbound = NIOLockedValueBox(ByteBuffer())
        let channel = try ClientBootstrap(group: group)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(Collector(inbound)) }
            }
            .connect(host: "127.0.0.1", port: port).wait()
        return RawClient(channel: channel, inbound: inbound)
    }

    func send(_ bytes: [UInt8]) throws {
        try channel.writeAndFlush(ByteBuffer(bytes: bytes)).wait()
    }

    /// Waits up to `timeout` seconds for one complete frame from the peer.
    func readFrame(timeout: Double = 5) throws -> ByteBuffer {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let frame = try inbound.withLockedValue { try VTPFrameDecoder.nextFrame(from: &$0, maximumFrameSize: 1 << 20) }
            if let frame { return frame }
            Thread.sleep(forTimeInterval: 0.01)
        }
        throw ChannelError.eof
    }

    var isClosed: Bool { !channel.isActive }

    /// True if the peer closed the connection within `timeout` seconds.
    func waitForClose(timeout: Double = 5) throws -> Bool {
        let timedOut = NIOLockedValueBox(false)
        let timer = channel.eventLoop.scheduleTask(in: .milliseconds(Int64(timeout * 1000))) {
            timedOut.withLockedValue { $0 = true }
            self.channel.close(promise: nil)
        }
        try channel.closeFuture.wait()
        timer.cancel()
        return !timedOut.withLockedValue { $0 }
    }

    func close() { channel.close(promise: nil) }
}
