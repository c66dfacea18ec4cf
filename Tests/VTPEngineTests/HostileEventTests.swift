import BenchConfig
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Protocol
import VTPEngine
import XCTest

/// Single events a hostile or broken peer can send: none may stop the receiver, skew its
/// counters absurdly, or hold up other clients.
final class HostileEventTests: XCTestCase {
    // MARK: sequence numbers

    func testSequenceNumbersNoSenderEmitsAreOutOfRangeNotMissing() {
        var tracker = SequenceTracker()
        for hostile in [UInt64.max, UInt64(Int64.max), UInt64(Int64.max) - 1, SequenceTracker.maximumSequence + 1] {
            XCTAssertEqual(tracker.record(run: "r", sequence: hostile), .outOfRange, "\(hostile)")
        }
        XCTAssertEqual(tracker.outOfRange, 4)
        XCTAssertEqual(tracker.missing, 0)
        XCTAssertEqual(tracker.unique, 0, "out-of-range numbers are not tracked")
        for sequence: UInt64 in [0, 1, 2] { XCTAssertEqual(tracker.record(run: "r", sequence: sequence), .inOrder) }
        XCTAssertEqual(tracker.record(run: "r", sequence: .max), .outOfRange, "also once the run has a highest")
        XCTAssertEqual(tracker.record(run: "r", sequence: 5), .inOrder)
        XCTAssertEqual(tracker.missing, 2, "3 and 4")
        XCTAssertEqual(tracker.outOfRange, 5)
        XCTAssertEqual(tracker.unique, 4)
    }

    func testAJumpFarBeyondTheRunIsOutOfRangeButAnOrdinaryGapIsMissing() {
        var tracker = SequenceTracker()
        XCTAssertEqual(tracker.record(run: "r", sequence: 10), .inOrder)
        XCTAssertEqual(tracker.missing, 10, "a receiver that joins late counts the run's start as missing")
        XCTAssertEqual(tracker.record(run: "r", sequence: 10 + SequenceTracker.maximumJump + 1), .outOfRange)
        XCTAssertEqual(tracker.record(run: "r", sequence: 10 + SequenceTracker.maximumJump), .inOrder)
        XCTAssertEqual(tracker.missing, 10 + Int(SequenceTracker.maximumJump) - 1)
        XCTAssertEqual(tracker.record(run: "r", sequence: 11), .outOfOrder)
        XCTAssertEqual(tracker.record(run: "r", sequence: 11), .duplicate)
        // A new run starts at 0: its first number is bounded by the same jump.
        XCTAssertEqual(tracker.record(run: "new", sequence: SequenceTracker.maximumJump + 1), .outOfRange)
        XCTAssertEqual(tracker.outOfRange, 2)
    }

    func testMissingStaysWithinTheBoundAcrossManyRuns() {
        var tracker = SequenceTracker()
        // Climb a run to the absolute bound in maximum jumps: never beyond it, never trapping.
        var sequence: UInt64 = 0
        while sequence <= SequenceTracker.maximumSequence {
            XCTAssertEqual(tracker.record(run: "climb", sequence: sequence), .inOrder)
            sequence += SequenceTracker.maximumJump
        }
        XCTAssertEqual(tracker.record(run: "climb", sequence: sequence), .outOfRange)
        XCTAssertEqual(tracker.missing, Int(SequenceTracker.maximumSequence) + 1 - 257)
    }

    func testAPeerInventingRunIDsCannotGrowTheTrackerBeyondItsBound() {
        var tracker = SequenceTracker()
        for run in 0..<SequenceTracker.maximumRuns {
            XCTAssertEqual(tracker.record(run: "run-\(run)", sequence: 0), .inOrder)
        }
        for run in SequenceTracker.maximumRuns..<(SequenceTracker.maximumRuns + 500) {
            XCTAssertEqual(tracker.record(run: "run-\(run)", sequence: 0), .untracked)
        }
        XCTAssertEqual(tracker.trackedRuns, SequenceTracker.maximumRuns)
        XCTAssertEqual(tracker.untrackedRuns, 500, "events of the runs beyond the bound")
        // The runs already tracked go on being tracked.
        XCTAssertEqual(tracker.record(run: "run-0", sequence: 2), .inOrder)
        XCTAssertEqual(tracker.record(run: "run-0", sequence: 2), .duplicate)
        XCTAssertEqual(tracker.missing, 1)
        XCTAssertEqual(tracker.unique, SequenceTracker.maximumRuns + 1)
    }

    func testAnOverlongRunIDIsNotTracked() {
        var tracker = SequenceTracker()
        let long = String(repeating: "x", count: SequenceTracker.maximumRunIDBytes + 1)
        XCTAssertEqual(tracker.record(run: long, sequence: 0), .untracked)
        XCTAssertEqual(tracker.trackedRuns, 0)
        XCTAssertEqual(tracker.record(run: String(long.dropLast()), sequence: 0), .inOrder)
    }

    // MARK: over a real receiver

    private var group: MultiThreadedEventLoopGroup!
    private var clientGroup: MultiThreadedEventLoopGroup!
    private let lines = NIOLockedValueBox<[String]>([])
    private let errors = NIOLockedValueBox<[String]>([])

    // One receiver thread: every connection shares one event loop, so a slow frame
    // would hold up everyone.
    override func setUp() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    override func tearDown() {
        try? clientGroup.syncShutdownGracefully()
        try? group.syncShutdownGracefully()
    }

    private func makeReceiver() throws -> (VTPReceiver, Int) {
        var config = BenchConfiguration()
        config.port = 0
        config.reportInterval = 0.1
        let receiver = try VTPReceiver(
            options: ReceiverOptions(configuration: config), group: group,
            output: { [lines] l in lines.withLockedValue { $0.append(l) } },
            errorOutput: { [errors] l in errors.withLockedValue { $0.append(l) } })
        let address = try receiver.start().wait()
        // Also when a test fails early: an unfinished receiver would leak its promise.
        addTeardownBlock {
            receiver.stop()
            _ = try? receiver.done.wait()
        }
        return (receiver, address.port!)
    }

    private func send(_ document: String, on client: RawClient) throws -> TransportMessage {
        var frame = ByteBuffer()
        VTPFraming.writeFrame(Array(document.utf8), into: &frame)
        try client.send(Array(frame.readableBytesView))
        guard case .transport(let reply) = try VTPMessage.parse(try client.readFrame()) else {
            throw VTPMessageError.unexpectedRoot("not a Transport reply")
        }
        return reply
    }

    /// A minimal event; `params` go into What, raw (the point is to send what no sender would).
    private func event(ivorn: String, params: [(String, String)], who: String = "") -> String {
        let what = params.map { #"<Param name="\#($0.0)" value="\#($0.1)"/>"# }.joined()
        return #"<?xml version="1.0"?><voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" version="2.0" "#
            + #"role="test" ivorn="\#(ivorn)"><Who\#(who)><AuthorIVORN>ivo://hostile.test/a</AuthorIVORN>"#
            + "<Date>2024-01-01T00:00:00</Date></Who><What>\(what)</What></voe:VOEvent>"
    }

    /// Waits (bounded) until the receiver has printed `count` more report lines.
    private func waitForReports(after start: Int, count: Int) {
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if lines.withLockedValue({ $0.dropFirst(start).filter { $0.contains("missing") }.count }) >= count { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    func testHostileSequenceNumbersAndTimestampsLeaveTheReceiverReportingSanely() throws {
        let (receiver, port) = try makeReceiver()
        let client = try RawClient.connect(group: clientGroup, port: port)
        let now = String(WallClock.nowNanos())
        let hostile: [[(String, String)]] = [
            [("seq", "18446744073709551615"), ("sent_ns", now), ("run", "x")],
            [("seq", "9223372036854775807"), ("sent_ns", now), ("run", "x")],
            [("seq", "9223372036854775806"), ("sent_ns", now), ("run", "x")],
            // Timestamps whose latency does not fit in 64-bit nanoseconds.
            [("seq", "1"), ("sent_ns", "-9223372036854775808"), ("run", "y")],
            [("seq", "2"), ("sent_ns", String(Int64.max)), ("run", "y")],
            [("seq", "3"), ("sent_ns", now), ("clock_offset_ns", "0"), ("clock_error_ns", "-9223372036854775808"), ("run", "y")],
            [("seq", "4"), ("run", "y")],  // Who/Date only, made year 9999 below: past Int64 nanoseconds
        ]
        for (index, params) in hostile.enumerated() {
            var document = event(ivorn: "ivo://hostile.test/a#\(index)", params: params)
            if index == hostile.count - 1 {
                document = document.replacingOccurrences(of: "2024-01-01T00:00:00", with: "9999-12-31T23:59:59")
            }
            let reply = try send(document, on: client)
            // Acked or nak'ed is the receiver's choice; the point is that it answers.
            XCTAssertTrue(reply.role == .ack || reply.role == .nak, "\(reply)")
        }
        // The old receiver trapped computing `missing` at its next report (one report: an idle
        // receiver then says so once and stays quiet).
        let start = lines.withLockedValue { $0.count }
        waitForReports(after: start, count: 1)
        let normal = event(ivorn: "ivo://hostile.test/a#normal", params: [("seq", "0"), ("sent_ns", now), ("run", "x")])
        XCTAssertEqual(try send(normal, on: client).role, .ack, "still alive and acking")
        waitForReports(after: lines.withLockedValue { $0.count }, count: 1)
        let reports = lines.withLockedValue { $0 }.filter { $0.contains("missing") }
        XCTAssertFalse(reports.isEmpty)
        print("last report: \(reports.last ?? "none")")
        client.close()
        receiver.stop()
        let summary = try receiver.done.wait()
        XCTAssertEqual(summary.sequenceOutOfRange, 3)
        XCTAssertEqual(summary.naks, 1, "the year-9999 date is not a valid timestamp")
        XCTAssertEqual(summary.received, 7, "six hostile events acked, then the normal one")
        XCTAssertEqual(summary.missing, 1, "run y: 1…3 recorded, 0 never sent; run x: only 0 is in range")
        XCTAssertTrue(reports.last!.contains("missing 1,"), reports.last!)
        XCTAssertTrue(reports.last!.contains("sequence out of range 3"), reports.last!)
        XCTAssertEqual(summary.implausibleTimestamps, 2, "sent_ns Int64.min and Int64.max: acked and counted")
        XCTAssertEqual(summary.latency.count, 5, "and left out of the statistics")
        XCTAssertTrue(reports.last!.contains("implausible timestamps 2"), reports.last!)
    }

    func testAnElementWithTensOfThousandsOfAttributesIsRefusedWithoutStallingOthers() throws {
        let (receiver, port) = try makeReceiver()
        var attributes = ""
        for i in 0..<90_000 { attributes += " a\(i)=\"v\"" }
        let huge = event(
            ivorn: "ivo://hostile.test/a#huge", params: [("seq", "0"), ("sent_ns", "1"), ("run", "h")], who: attributes)
        XCTAssertGreaterThan(huge.utf8.count, 900_000)
        XCTAssertLessThan(huge.utf8.count, VTPFraming.defaultMaximumFrameSize)

        let attacker = try RawClient.connect(group: clientGroup, port: port)
        let bystander = try RawClient.connect(group: clientGroup, port: port)
        var frame = ByteBuffer()
        VTPFraming.writeFrame(Array(huge.utf8), into: &frame)
        let sentAt = Date()
        try attacker.send(Array(frame.readableBytesView))
        let normal = TestEventBuilder(localIVO: "ivo://hostile.test/bystander", eventSize: 0)
            .document(sequence: 0, sentNanos: WallClock.nowNanos())
        let bystanderAt = Date()
        let ack = try send(normal, on: bystander)
        print("bystander's ack after \(Date().timeIntervalSince(bystanderAt)) s")
        XCTAssertEqual(ack.role, .ack, "the other client's event is acked")

        guard case .transport(let nak) = try VTPMessage.parse(try attacker.readFrame()) else { return XCTFail() }
        print("90,000-attribute event refused after \(Date().timeIntervalSince(sentAt)) s: \(nak.result ?? "")")
        XCTAssertEqual(nak.role, .nak)
        XCTAssertTrue(nak.result?.contains("more than \(SafeXMLParser.maximumAttributesPerElement) attributes") ?? false, nak.result ?? "")
        XCTAssertFalse(attacker.isClosed, "refused like other malformed XML: nak, connection kept")
        attacker.close()
        bystander.close()
        receiver.stop()
        let summary = try receiver.done.wait()
        XCTAssertEqual(summary.received, 1)
        XCTAssertEqual(summary.naks, 1)
    }
}
