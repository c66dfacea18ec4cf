import BenchConfig
import CommandLineKit
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Protocol
@testable import VTPEngine
import XCTest

/// The broadcaster's decisions, without sockets.
final class BroadcastStateTests: XCTestCase {
    typealias Action = BroadcastState.Action
    private let a = ConnectionID(0), b = ConnectionID(1), c = ConnectionID(2)

    private func state(window: Int = 2, wait: Int = 2, events: Int = 5, ackTimeout: Int64 = 1_000, iamalive: Int64 = 1_000)
        -> BroadcastState
    {
        BroadcastState(
            window: window, ackTimeoutNanos: ackTimeout, iamaliveIntervalNanos: iamalive, waitSubscribers: wait,
            totalEvents: events)
    }

    func testTheScheduleStartsOnceTheAwaitedSubscribersAreConnected() {
        var s = state(wait: 2)
        XCTAssertEqual(s.begin(), [])
        XCTAssertEqual(s.subscriberConnected(a, peer: "a", now: 0), [])
        XCTAssertEqual(s.eventsDue(3, now: 0), [], "nothing is due before the start")
        XCTAssertEqual(s.subscriberConnected(b, peer: "b", now: 0), [.startSchedule])
        var atOnce = state(wait: 0)
        XCTAssertEqual(atOnce.begin(), [.startSchedule])
    }

    func testEveryEventGoesToEverySubscriberUnderTheWindowAndIsAckedOnceAllAcked() {
        var s = state(window: 2, wait: 2, events: 4)
        _ = s.subscriberConnected(a, peer: "a", now: 0)
        _ = s.subscriberConnected(b, peer: "b", now: 0)
        XCTAssertEqual(s.eventsDue(4, now: 10), [.send(a, [0, 1]), .send(b, [0, 1])])
        XCTAssertEqual(s.backlog, 2, "two more wait behind each window")
        // Out of order: the freed slot takes the next event at once.
        let (actions, sentAt) = s.replied(a, sequence: 1, accepted: true, now: 15)
        XCTAssertEqual(actions, [.send(a, [2])])
        XCTAssertEqual(sentAt, 10)
        XCTAssertEqual(s.acked, 0, "b has not acked event 1 yet")
        _ = s.replied(b, sequence: 1, accepted: true, now: 16)
        XCTAssertEqual(s.acked, 1)
        for (id, sequence) in [(a, 0), (a, 2), (b, 0), (b, 2), (a, 3), (b, 3)] as [(ConnectionID, UInt64)] {
            _ = s.replied(id, sequence: sequence, accepted: true, now: 20)
        }
        XCTAssertEqual(s.acked, 4)
        XCTAssertTrue(s.isFinished)
        XCTAssertEqual(s.sent, 4, "each event counted once however many subscribers got it")
        XCTAssertEqual(s.subscribers[a]?.sent, 4)
        XCTAssertEqual(s.subscribers[b]?.acked, 4)
    }

    func testANakOrALeavingSubscriberKeepsTheEventFromCountingAsAcked() {
        var s = state(window: 4, wait: 2, events: 3)
        _ = s.subscriberConnected(a, peer: "a", now: 0)
        _ = s.subscriberConnected(b, peer: "b", now: 0)
        _ = s.eventsDue(2, now: 0)
        _ = s.replied(a, sequence: 0, accepted: true, now: 1)
        _ = s.replied(b, sequence: 0, accepted: false, now: 1)
        _ = s.replied(a, sequence: 1, accepted: true, now: 1)
        XCTAssertEqual(s.closed(b), [], "b leaves with event 1 unanswered")
        XCTAssertEqual([s.acked, s.nakked, s.lost], [0, 1, 1])
        // A subscriber joining now gets only what is scheduled from now on.
        _ = s.subscriberConnected(c, peer: "c", now: 2)
        XCTAssertEqual(s.eventsDue(3, now: 2), [.send(a, [2]), .send(c, [2])])
        _ = s.replied(a, sequence: 2, accepted: true, now: 3)
        XCTAssertEqual(s.replied(c, sequence: 2, accepted: true, now: 3).actions, [.finished])
        XCTAssertEqual(s.acked, 1)
        XCTAssertEqual(s.subscribers[b]?.lost, 1)
        XCTAssertEqual(s.subscribers[b]?.dropReason, nil, "it left; it was not dropped")
        XCTAssertEqual(s.replied(a, sequence: 9, accepted: true, now: 4).actions, [], "a reply for nothing in flight")
        XCTAssertEqual(s.unexpectedReplies, 1)
    }

    func testASilentSubscriberGetsAnIamaliveAndIsDroppedWhenItMissesIt() {
        var s = state(wait: 2, events: 10, ackTimeout: 10_000, iamalive: 100)
        _ = s.subscriberConnected(a, peer: "a", now: 0)
        _ = s.subscriberConnected(b, peer: "b", now: 0)
        XCTAssertEqual(s.check(now: 99), [])
        XCTAssertEqual(s.check(now: 100), [.iamalive(a), .iamalive(b)])
        XCTAssertEqual(s.check(now: 150), [], "one iamalive at a time")
        s.heardFrom(a, iamaliveAnswer: true, now: 160)
        XCTAssertEqual(s.check(now: 200), [.close(b)])
        XCTAssertEqual(s.subscribers[b]?.dropReason, .missedIamalive)
        XCTAssertEqual(s.droppedSubscribers, 1)
        XCTAssertEqual(s.check(now: 259), [], "a answered at 160: silent for 99")
        XCTAssertEqual(s.check(now: 260), [.iamalive(a)])
    }

    func testAnAckOverdueDropsTheSubscriberAndItsEventsAreLost() {
        var s = state(window: 8, wait: 2, events: 2, ackTimeout: 50, iamalive: 10_000)
        _ = s.subscriberConnected(a, peer: "a", now: 0)
        _ = s.subscriberConnected(b, peer: "b", now: 0)
        _ = s.eventsDue(2, now: 0)
        _ = s.replied(a, sequence: 0, accepted: true, now: 10)
        _ = s.replied(a, sequence: 1, accepted: true, now: 10)
        XCTAssertEqual(s.check(now: 49), [])
        XCTAssertEqual(s.check(now: 50), [.close(b), .finished])
        XCTAssertEqual(s.subscribers[b]?.dropReason, .ackTimeout)
        XCTAssertEqual([s.acked, s.lost], [0, 2])
        XCTAssertEqual(s.closed(b), [], "its close after the drop is no news")
    }

    func testEventsDueWithNoSubscriberAreLostAndStopClosesEveryone() {
        var s = state(wait: 0, events: 3)
        _ = s.begin()
        XCTAssertEqual(s.eventsDue(1, now: 0), [])
        XCTAssertEqual(s.lost, 1)
        _ = s.subscriberConnected(a, peer: "a", now: 0)
        _ = s.eventsDue(2, now: 0)
        XCTAssertEqual(s.stop(), [.close(a)])
        XCTAssertEqual(s.eventsDue(3, now: 1), [])
        XCTAssertEqual(s.subscriberConnected(b, peer: "b", now: 1), [.close(b)], "nobody joins a finished run")
        XCTAssertEqual(s.scheduled, 2)
    }
}

/// `vtp-sender --broadcast` on loopback, with our subscribers and a hand-driven one.
final class BroadcastEndToEndTests: XCTestCase {
    private var senderGroup: MultiThreadedEventLoopGroup!
    private var receiverGroup: MultiThreadedEventLoopGroup!

    override func setUp() {
        senderGroup = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        receiverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    }

    override func tearDown() {
        try? receiverGroup.syncShutdownGracefully()
        try? senderGroup.syncShutdownGracefully()
    }

    private func broadcaster(
        events: Int, period: Double, window: Int, wait: Int, iamalive: Double = 60
    ) throws -> (VTPBroadcaster, Int) {
        var config = BenchConfiguration()
        config.events = events
        config.period = period
        config.window = window
        config.eventSize = 0
        config.reportInterval = 60
        config.drainTimeout = 20
        config.iamaliveInterval = iamalive
        let broadcaster = VTPBroadcaster(
            options: SenderOptions(configuration: config), listen: HostAndPort(host: "127.0.0.1", port: 0),
            waitSubscribers: wait, group: senderGroup, output: { _ in })
        let address = try broadcaster.start().wait()
        addTeardownBlock { broadcaster.stop() }
        return (broadcaster, try XCTUnwrap(address.port))
    }

    private func subscriber(port: Int, stopAfter events: Int) throws -> VTPReceiver {
        var config = BenchConfiguration()
        config.reportInterval = 60
        var options = ReceiverOptions(configuration: config)
        options.subscriptions = [HostAndPort(host: "127.0.0.1", port: port)]
        options.stopAfterEvents = events
        options.stopAfterSeconds = 30
        let receiver = try VTPReceiver(options: options, group: receiverGroup, output: { _ in }, errorOutput: { _ in })
        try receiver.startSubscriptions().wait()
        return receiver
    }

    func testEveryEventReachesEverySubscriberAndIsAckedByAll() throws {
        let (broadcaster, port) = try broadcaster(events: 300, period: 0.5, window: 16, wait: 2)
        let receivers = try (0..<2).map { _ in try subscriber(port: port, stopAfter: 300) }
        let summary = try broadcaster.finished.wait()
        XCTAssertEqual(summary.acked, 300)
        XCTAssertEqual(summary.sent, 300)
        XCTAssertEqual(summary.mode, "broadcast")
        XCTAssertEqual(summary.subscribers?.map(\.sent), [300, 300])
        XCTAssertEqual(summary.subscribers?.map(\.acked), [300, 300])
        XCTAssertEqual(summary.subscribers?.map(\.dropped), [false, false])
        for receiver in receivers {
            let received = try receiver.done.wait()
            XCTAssertEqual(received.unique, 300)
            XCTAssertEqual(received.duplicates, 0)
        }
        let json = String(decoding: try JSONEncoder().encode(summary), as: UTF8.self)
        XCTAssertTrue(json.contains(#""subscribers":[{"#), json)
        for key in ["peer", "sent", "acked", "nakked", "dropped"] { XCTAssertTrue(json.contains("\"\(key)\":"), key) }
    }

    func testASubscriberThatNeverAnswersIsDroppedAndTheOthersCarryOn() throws {
        // Events 1.2 s apart leave silences longer than the 0.5 s iamalive interval.
        let (broadcaster, port) = try broadcaster(events: 3, period: 3.6, window: 8, wait: 2, iamalive: 0.5)
        let good = try subscriber(port: port, stopAfter: 3)
        let mute = try RawClient.connect(group: receiverGroup, port: port)
        defer { mute.close() }
        let summary = try broadcaster.finished.wait()
        let subscribers = try XCTUnwrap(summary.subscribers)
        XCTAssertEqual(subscribers.count, 2)
        let dropped = try XCTUnwrap(subscribers.first { $0.dropped })
        XCTAssertEqual(dropped.dropReason, "missed iamalive")
        XCTAssertEqual(summary.subscribersDropped, 1)
        let kept = try XCTUnwrap(subscribers.first { !$0.dropped })
        XCTAssertEqual(kept.acked, 3, "the answering subscriber was kept and got everything")
        XCTAssertEqual(summary.acked, 2, "event 0 was sent to the mute subscriber too, which never acked it")
        XCTAssertEqual(summary.failed, 1)
        XCTAssertEqual(try good.done.wait().unique, 3)
        XCTAssertTrue(try mute.waitForClose(), "the dropped subscriber's connection is closed")
    }
}
