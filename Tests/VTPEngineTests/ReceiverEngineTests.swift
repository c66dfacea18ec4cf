import BenchConfig
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOPosix
import Protocol
@testable import VTPEngine
import XCTest

/// The receiver engine: one flush per read, rows before acks, per-loop statistics handed to
/// the home loop, and settings no check caught.
final class ReceiverEngineTests: XCTestCase {
    private var group: MultiThreadedEventLoopGroup!
    private var clientGroup: MultiThreadedEventLoopGroup!
    private let lines = NIOLockedValueBox<[String]>([])

    override func setUp() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    override func tearDown() {
        try? clientGroup.syncShutdownGracefully()
        try? group.syncShutdownGracefully()
    }

    private func makeReceiver(_ configure: (inout ReceiverOptions) -> Void = { _ in }) throws -> (VTPReceiver, Int) {
        var config = BenchConfiguration()
        config.port = 0
        config.reportInterval = 60
        var options = ReceiverOptions(configuration: config)
        configure(&options)
        let receiver = try VTPReceiver(
            options: options, group: group, output: { [lines] l in lines.withLockedValue { $0.append(l) } },
            errorOutput: { _ in })
        let address = try receiver.start().wait()
        addTeardownBlock {
            receiver.stop()
            _ = try? receiver.done.wait()
        }
        return (receiver, address.port!)
    }

    private func framedEvents(_ count: Int, builder: TestEventBuilder) -> [UInt8] {
        var buffer = ByteBuffer()
        for sequence in 0..<UInt64(count) {
            builder.writeFramedDocument(sequence: sequence, sentNanos: WallClock.nowNanos(), into: &buffer)
        }
        return Array(buffer.readableBytesView)
    }

    /// Counts flushes reaching the socket end of the pipeline.
    private final class FlushCounter: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var flushes = 0
        func flush(context: ChannelHandlerContext) {
            flushes += 1
            context.flush()
        }
    }

    func testAPipelinedReadIsAnsweredWithOneFlushAndOneHandOver() throws {
        let channel = EmbeddedChannel()
        let loop = NIOLoopBoundBox.makeBoxSendingValue(ReceiverLoopState(), eventLoop: channel.embeddedEventLoop)
        let handOvers = NIOLockedValueBox<[Int]>([])
        let shared = ReceiverConnectionHandler.Shared(
            receiverIVO: "ivo://t/receiver", csv: nil, warmup: WarmupWindow(seconds: 0), observer: nil,
            reportError: { _ in },
            handOver: { box in
                let handOver = box.value.takeHandOver()
                handOvers.withLockedValue { $0.append(handOver.sequences.count) }
            })
        let counter = FlushCounter()
        try channel.pipeline.syncOperations.addHandlers([
            counter, ByteToMessageHandler(VTPFrameDecoder(maximumFrameSize: 1 << 20)),
            ReceiverConnectionHandler(shared: shared, loop: loop),
        ])
        let builder = TestEventBuilder(localIVO: "ivo://t/sender", eventSize: 0)
        try channel.writeInbound(ByteBuffer(bytes: framedEvents(20, builder: builder)))
        channel.embeddedEventLoop.run()

        XCTAssertEqual(counter.flushes, 1, "20 pipelined events, one read: one flush")
        var origins: [String] = []
        // A read's replies are written as one buffer of frames.
        while var reply = try channel.readOutbound(as: ByteBuffer.self) {
            while let frame = try VTPFrameDecoder.nextFrame(from: &reply, maximumFrameSize: 1 << 20) {
                guard case .transport(let ack) = try VTPMessage.parse(frame) else { return XCTFail("not a transport message") }
                XCTAssertEqual(ack.role, .ack)
                origins.append(ack.origin)
            }
        }
        XCTAssertEqual(origins, (0..<20).map { builder.ivorn(sequence: UInt64($0)) }, "every event acked, in order")
        XCTAssertEqual(handOvers.withLockedValue { $0 }, [20], "one hand-over to the home loop per read")
        XCTAssertEqual(loop.value.tally.received, 20)
        _ = try channel.finish()
    }

    func testAnAckedEventIsInTheEventsCSVBeforeTheReceiverStops() throws {
        let csv = FileManager.default.temporaryDirectory.appendingPathComponent("vtp-acked-\(UUID()).csv").path
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let (_, port) = try makeReceiver { $0.eventsCSVPath = csv }
        let builder = TestEventBuilder(localIVO: "ivo://t/sender", eventSize: 0)
        let client = try RawClient.connect(group: clientGroup, port: port)
        defer { client.close() }
        for round in 0..<3 {
            try client.send(framedEvents(40, builder: builder))
            for _ in 0..<40 {
                guard case .transport(let ack) = try VTPMessage.parse(try client.readFrame()) else { return XCTFail() }
                XCTAssertEqual(ack.role, .ack)
            }
            // Read while the receiver runs: a process killed now would leave exactly this file.
            let rows = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").dropFirst()
            XCTAssertEqual(rows.count, 40 * (round + 1), "every acked event has its row")
        }
    }

    func testAbsurdDurationsNeitherTrapNorStall() throws {
        // Past what flags allow (a config file only checks > 0): must saturate, not trap.
        let (receiver, port) = try makeReceiver {
            $0.reportInterval = 1e300
            $0.idleTimeout = .infinity
            $0.stopAfterSeconds = 1e300
            $0.warmupSeconds = 1e300
        }
        let client = try RawClient.connect(group: clientGroup, port: port)
        try client.send(framedEvents(1, builder: TestEventBuilder(localIVO: "ivo://t/sender", eventSize: 0)))
        guard case .transport(let ack) = try VTPMessage.parse(try client.readFrame()) else { return XCTFail() }
        XCTAssertEqual(ack.role, .ack)
        client.close()
        receiver.stop()
        let summary = try receiver.done.wait()
        XCTAssertEqual(summary.received, 1)
        XCTAssertEqual(summary.warmupExcluded, 1, "a warm-up of 1e300 s covers everything")
    }

    func testStopAfterEventsCountsTheEventsOfEveryLoop() throws {
        let (receiver, port) = try makeReceiver { $0.stopAfterEvents = 40 }
        // Four connections over the receiver's two loops, ten events each.
        let clients = try (0..<4).map { _ in try RawClient.connect(group: clientGroup, port: port) }
        for (index, client) in clients.enumerated() {
            let builder = TestEventBuilder(localIVO: "ivo://t/sender\(index)", eventSize: 0)
            for sequence in 0..<UInt64(10) {
                var frame = ByteBuffer()
                builder.writeFramedDocument(sequence: sequence, sentNanos: WallClock.nowNanos(), into: &frame)
                try client.send(Array(frame.readableBytesView))
                guard case .transport(let ack) = try VTPMessage.parse(try client.readFrame()) else { return XCTFail() }
                XCTAssertEqual(ack.role, .ack)
            }
        }
        let summary = try receiver.done.wait()  // no stop(): the 40th event stops it
        XCTAssertEqual(summary.received, 40)
        XCTAssertEqual(summary.unique, 40, "every loop's sequence numbers reached the one tracker")
        XCTAssertEqual(summary.missing, 0)
        XCTAssertEqual(summary.connectionsAccepted, 4)
        for client in clients { XCTAssertTrue(try client.waitForClose(), "stopping closes the connections") }
    }

    private func waitForLine(after start: Int, timeout: Double = 5, _ predicate: (String) -> Bool) -> Int? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let index = lines.withLockedValue({ all in all.indices.dropFirst(start).first { predicate(all[$0]) } }) {
                return index
            }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return nil
    }

    func testAnIdleReceiverSaysSoOnceThenReportsWhenEventsArrive() throws {
        let (_, port) = try makeReceiver { $0.reportInterval = 0.05 }
        let idle = try XCTUnwrap(waitForLine(after: 0) { $0.hasPrefix("Idle since ") })
        Thread.sleep(forTimeInterval: 0.6)  // at least ten more intervals
        XCTAssertEqual(lines.withLockedValue { $0.count }, idle + 1, "idle: one line, then nothing")

        let client = try RawClient.connect(group: clientGroup, port: port)
        try client.send(framedEvents(1, builder: TestEventBuilder(localIVO: "ivo://t/sender", eventSize: 0)))
        _ = try client.readFrame()
        let report = try XCTUnwrap(waitForLine(after: idle + 1) { $0.hasPrefix("Received 1 events; Latency ") })
        let idleAgain = try XCTUnwrap(waitForLine(after: report) { $0.hasPrefix("Idle since ") })
        XCTAssertTrue(lines.withLockedValue { $0[idleAgain] }.contains("(the last event)"))
        Thread.sleep(forTimeInterval: 0.6)
        XCTAssertEqual(lines.withLockedValue { $0.count }, idleAgain + 1, "idle again: one line, then nothing")
        client.close()
    }
}

/// Acks wait for their rows: a writer that completes only when the test says so.
final class ReceiverRowsBeforeAcksTests: XCTestCase {
    private final class HeldWriter: EventRowWriter {
        let held = NIOLockedValueBox<[(String, EventLoopPromise<EventsCSVWriter.Outcome>)]>([])
        func write(_ rows: String, on loop: EventLoop) -> EventLoopFuture<EventsCSVWriter.Outcome> {
            let promise = loop.makePromise(of: EventsCSVWriter.Outcome.self)
            held.withLockedValue { $0.append((rows, promise)) }
            return promise.futureResult
        }
    }

    func testAReadsAcksAreSentOnlyOnceItsRowsAreWritten() throws {
        let channel = EmbeddedChannel()
        let writer = HeldWriter()
        let shared = ReceiverConnectionHandler.Shared(
            receiverIVO: "ivo://t/receiver", csv: writer, warmup: WarmupWindow(seconds: 0), observer: nil,
            reportError: { _ in }, handOver: { _ in })
        let loop = NIOLoopBoundBox.makeBoxSendingValue(ReceiverLoopState(), eventLoop: channel.embeddedEventLoop)
        try channel.pipeline.syncOperations.addHandlers([
            ByteToMessageHandler(VTPFrameDecoder(maximumFrameSize: 1 << 20)),
            ReceiverConnectionHandler(shared: shared, loop: loop),
        ])
        let builder = TestEventBuilder(localIVO: "ivo://t/sender", eventSize: 0)
        for read in 0..<2 {
            var buffer = ByteBuffer()
            for sequence in UInt64(read * 5)..<UInt64(read * 5 + 5) {
                builder.writeFramedDocument(sequence: sequence, sentNanos: WallClock.nowNanos(), into: &buffer)
            }
            try channel.writeInbound(buffer)
        }
        channel.embeddedEventLoop.run()
        let held = writer.held.withLockedValue { $0 }
        XCTAssertEqual(held.count, 2, "one hand-over of rows per read")
        XCTAssertEqual(held.map { $0.0.split(separator: "\n").count }, [5, 5])
        XCTAssertNil(try channel.readOutbound(as: ByteBuffer.self), "no ack before its row is written")

        held[0].1.succeed(.written)
        channel.embeddedEventLoop.run()
        var acks = 0
        while var reply = try channel.readOutbound(as: ByteBuffer.self) {
            while try VTPFrameDecoder.nextFrame(from: &reply, maximumFrameSize: 1 << 20) != nil { acks += 1 }
        }
        XCTAssertEqual(acks, 5, "the first read's acks, not the second's")

        held[1].1.succeed(.closed)  // the receiver stopped before these rows were written
        channel.embeddedEventLoop.run()
        XCTAssertNil(try channel.readOutbound(as: ByteBuffer.self), "rows not written: no acks")
        XCTAssertFalse(channel.isActive, "and the connection is closed")
    }
}
