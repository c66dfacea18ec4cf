import BenchConfig
@testable import VTPEngine
import XCTest

final class DispatchStateTests: XCTestCase {
    typealias Action = SenderDispatchState.Action

    private func connects(_ actions: [Action]) -> [ConnectionID] {
        actions.compactMap { if case .connect(let id) = $0 { return id } else { return nil } }
    }
    private func sends(_ actions: [Action]) -> [(ConnectionID, PendingEvent)] {
        actions.compactMap { if case .send(let id, let e) = $0 { return (id, e) } else { return nil } }
    }

    func testPerEventNeverExceedsMaxConnectAndReusesFreedSlots() {
        var s = SenderDispatchState(mode: .perEvent, scope: .connection, maxConnect: 3, totalEvents: 5, intervalNanos: 10, startWallNanos: 1000)
        let opened = connects(s.eventsDue(5, now: 0))
        XCTAssertEqual(opened.count, 3)
        XCTAssertEqual(s.backlog, 2)
        let sent = sends(s.connected(opened[0], now: 1))
        XCTAssertEqual(sent.map { $0.1.sequence }, [0])
        XCTAssertEqual(sent[0].1.scheduledNanos, 1000, "timestamp = scheduled moment")
        // The ack closes the connection and frees its slot for the next event.
        let afterAck = s.replied(opened[0], accepted: true, now: 2)
        XCTAssertTrue(afterAck.contains(.close(opened[0])))
        XCTAssertEqual(connects(afterAck).count, 1)
        XCTAssertEqual(s.openConnections, 3)
        XCTAssertEqual(s.acked, 1)
    }

    func testSetupScopeReleasesTheSlotOnceWritten() {
        var s = SenderDispatchState(mode: .perEvent, scope: .setup, maxConnect: 1, totalEvents: 3, intervalNanos: 0, startWallNanos: 0)
        let first = connects(s.eventsDue(3, now: 0))
        XCTAssertEqual(first.count, 1)
        _ = s.connected(first[0], now: 0)
        let afterWrite = s.written(first[0], now: 0)
        XCTAssertEqual(connects(afterWrite).count, 1, "next set-up starts before the ack")
        XCTAssertEqual(s.openConnections, 2)
        // Under the connection scope the same write frees nothing.
        var c = SenderDispatchState(mode: .perEvent, scope: .connection, maxConnect: 1, totalEvents: 3, intervalNanos: 0, startWallNanos: 0)
        let id = connects(c.eventsDue(3, now: 0))[0]
        _ = c.connected(id, now: 0)
        XCTAssertEqual(c.written(id, now: 0), [])
    }

    func testFailureRequeuesTheEventAtTheFrontAndBacksOff() {
        var s = SenderDispatchState(mode: .perEvent, scope: .connection, maxConnect: 1, totalEvents: 2, intervalNanos: 0, startWallNanos: 0)
        let id = connects(s.eventsDue(2, now: 0))[0]
        let afterFailure = s.failed(id, now: 100)
        XCTAssertTrue(afterFailure.contains(.close(id)))
        XCTAssertEqual(afterFailure.last, .wakeUp(atNanos: 100 + SenderDispatchState.initialBackoffNanos))
        XCTAssertEqual(connects(afterFailure), [], "no reconnect during back-off")
        XCTAssertEqual(s.backlog, 2, "nothing dropped")
        // After the back-off the same event (attempt 2) goes first.
        let retry = connects(s.wakeUp(now: 100 + SenderDispatchState.initialBackoffNanos))
        XCTAssertEqual(retry.count, 1)
        let resend = sends(s.connected(retry[0], now: 0))
        XCTAssertEqual(resend.map { $0.1.sequence }, [0])
        XCTAssertEqual(resend[0].1.attempts, 0, "the connect failed, so it was never written")
        XCTAssertEqual(s.sent, 1)
        XCTAssertEqual(s.resent, 0)
    }

    func testBackoffGrowsGeometricallyAndIsCapped() {
        var s = SenderDispatchState(mode: .perEvent, scope: .connection, maxConnect: 1, totalEvents: 1, intervalNanos: 0, startWallNanos: 0)
        var now: Int64 = 0
        var delays: [Int64] = []
        var id = connects(s.eventsDue(1, now: now))[0]
        for _ in 0..<8 {
            let actions = s.failed(id, now: now)
            guard case .wakeUp(let at)? = actions.last else { return XCTFail("\(actions)") }
            delays.append(at - now)
            now = at
            id = connects(s.wakeUp(now: now))[0]
        }
        XCTAssertEqual(Array(delays.prefix(4)), [50, 100, 200, 400].map { Int64($0) * 1_000_000 })
        XCTAssertEqual(delays.last, SenderDispatchState.maximumBackoffNanos)
        _ = s.connected(id, now: now)
        XCTAssertEqual(s.errors, 8)
    }

    func testPersistentKeepsOneEventInFlightPerConnection() {
        var s = SenderDispatchState(mode: .persistent, scope: .connection, maxConnect: 2, totalEvents: 4, intervalNanos: 0, startWallNanos: 0)
        let ids = connects(s.eventsDue(0, now: 0))
        XCTAssertEqual(ids.count, 2, "persistent connections open before events are due")
        XCTAssertEqual(sends(s.connected(ids[0], now: 0)).count, 0)
        _ = s.connected(ids[1], now: 0)
        let first = sends(s.eventsDue(4, now: 0))
        XCTAssertEqual(first.map { $0.1.sequence }, [0, 1])
        XCTAssertEqual(Set(first.map { $0.0 }), Set(ids))
        XCTAssertEqual(s.backlog, 2)
        let next = s.replied(ids[0], accepted: true, now: 0)
        XCTAssertEqual(sends(next).map { $0.0 }, [ids[0]])
        XCTAssertFalse(next.contains(.close(ids[0])))
        _ = s.replied(ids[1], accepted: false, now: 0)
        _ = s.replied(ids[0], accepted: true, now: 0)
        let last = s.replied(ids[1], accepted: true, now: 0)
        XCTAssertEqual(last.last, .finished)
        XCTAssertEqual(Set(last.dropLast()), [.close(ids[0]), .close(ids[1])])
        XCTAssertEqual(s.acked, 3)
        XCTAssertEqual(s.nakked, 1)
        XCTAssertTrue(s.isFinished)
    }

    func testPersistentFailureMovesTheInFlightEventToTheQueueFront() {
        var s = SenderDispatchState(mode: .persistent, scope: .connection, maxConnect: 1, totalEvents: 3, intervalNanos: 0, startWallNanos: 0)
        let id = connects(s.eventsDue(3, now: 0))[0]
        XCTAssertEqual(sends(s.connected(id, now: 0)).map { $0.1.sequence }, [0])
        _ = s.failed(id, now: 0)
        let reopened = connects(s.wakeUp(now: SenderDispatchState.initialBackoffNanos))
        let resent = sends(s.connected(reopened[0], now: 0))
        XCTAssertEqual(resent.map { $0.1.sequence }, [0])
        XCTAssertEqual(resent[0].1.attempts, 1, "written once without a reply")
        XCTAssertEqual(s.sent, 1)
        XCTAssertEqual(s.resent, 1)
        XCTAssertEqual(s.unfinished, 3)
    }

    func testPeerClosingAnIdleConnectionIsNotAnError() {
        var s = SenderDispatchState(mode: .persistent, scope: .connection, maxConnect: 1, totalEvents: 2, intervalNanos: 0, startWallNanos: 0)
        let id = connects(s.eventsDue(2, now: 0))[0]
        _ = s.connected(id, now: 0)
        _ = s.replied(id, accepted: true, now: 0)
        let busyAgain = s.connections[id]?.state
        XCTAssertNotEqual(busyAgain, .idle, "the second event went straight out")
        _ = s.replied(id, accepted: true, now: 0)
        var t = SenderDispatchState(mode: .persistent, scope: .connection, maxConnect: 1, totalEvents: 2, intervalNanos: 0, startWallNanos: 0)
        let first = connects(t.eventsDue(1, now: 0))[0]
        _ = t.connected(first, now: 0)
        _ = t.replied(first, accepted: true, now: 0)  // now idle: event 1 is not due yet
        let reopen = t.peerClosed(first, now: 0)
        XCTAssertEqual(connects(reopen).count, 1, "reopened at once, no back-off")
        XCTAssertEqual(t.errors, 0)
        XCTAssertEqual(t.peerClosedIdle, 1)
    }

    func testStopClosesEverythingAndCountsTheRestUnfinished() {
        var s = SenderDispatchState(mode: .perEvent, scope: .connection, maxConnect: 2, totalEvents: 10, intervalNanos: 0, startWallNanos: 0)
        let ids = connects(s.eventsDue(10, now: 0))
        _ = s.connected(ids[0], now: 0)
        _ = s.replied(ids[0], accepted: true, now: 0)
        let closing = s.stop()
        XCTAssertEqual(closing.count, 2)
        XCTAssertEqual(s.eventsDue(10, now: 0), [])
        XCTAssertEqual(s.unfinished, 9)
    }

    func testLateCallbacksForUnknownConnectionsAreIgnored() {
        var s = SenderDispatchState(mode: .perEvent, scope: .connection, maxConnect: 1, totalEvents: 1, intervalNanos: 0, startWallNanos: 0)
        XCTAssertEqual(s.failed(ConnectionID(99), now: 0), [])
        XCTAssertEqual(s.replied(ConnectionID(99), accepted: true, now: 0), [])
        XCTAssertEqual(s.errors, 0)
    }

    // MARK: back-off on any failure before an ack

    private func wakeUpTime(_ actions: [Action]) -> Int64? {
        actions.compactMap { if case .wakeUp(let at) = $0 { return at } else { return nil } }.last
    }

    func testAConnectThatSucceedsDoesNotResetTheBackoffOnlyAReplyDoes() throws {
        // A peer that accepts and then closes: every connect succeeds, every event fails.
        var s = SenderDispatchState(mode: .perEvent, scope: .connection, maxConnect: 1, totalEvents: 2, intervalNanos: 0, startWallNanos: 0)
        var now: Int64 = 0
        var id = connects(s.eventsDue(2, now: now))[0]
        var delays: [Int64] = []
        for _ in 0..<5 {
            XCTAssertEqual(sends(s.connected(id, now: now)).count, 1)
            let actions = s.failed(id, cause: .closedBeforeAck, now: now)
            let at = try XCTUnwrap(wakeUpTime(actions), "\(actions)")
            delays.append(at - now)
            now = at
            id = connects(s.wakeUp(now: now))[0]
        }
        XCTAssertEqual(delays, [50, 100, 200, 400, 800].map { Int64($0) * 1_000_000 }, "geometric, not reset by connects")
        XCTAssertEqual(s.errorsByCause, [.closedBeforeAck: 5])
        // An ack proves the receiver healthy: the next failure starts from the initial back-off.
        _ = s.connected(id, now: now)
        id = try XCTUnwrap(connects(s.replied(id, accepted: true, now: now)).first, "event 1 goes out at once")
        _ = s.connected(id, now: now)
        XCTAssertEqual(wakeUpTime(s.failed(id, cause: .badReply, now: now)), now + SenderDispatchState.initialBackoffNanos)
    }

    func testWhileFailingOneProbeConnectionAtATime() {
        var s = SenderDispatchState(mode: .perEvent, scope: .connection, maxConnect: 30, totalEvents: 5, intervalNanos: 0, startWallNanos: 0)
        let first = connects(s.eventsDue(5, now: 0))
        XCTAssertEqual(first.count, 5)
        for id in first { _ = s.connected(id, now: 0) }
        for id in first { _ = s.failed(id, cause: .closedBeforeAck, now: 1) }
        XCTAssertEqual(s.openConnections, 0)
        let t = 1 + SenderDispatchState.initialBackoffNanos
        let probe = connects(s.wakeUp(now: t))
        XCTAssertEqual(probe.count, 1, "one probe, not five connections")
        XCTAssertEqual(connects(s.wakeUp(now: t + 1)), [], "nothing more while the probe is out")
        _ = s.connected(probe[0], now: t + 2)
        let afterAck = s.replied(probe[0], accepted: true, now: t + 3)
        XCTAssertEqual(connects(afterAck).count, 4, "a reply restores full concurrency")
    }

    func testPersistentOpensNoMoreConnectionsThanUnfinishedEvents() {
        var s = SenderDispatchState(mode: .persistent, scope: .connection, maxConnect: 30000, totalEvents: 3, intervalNanos: 0, startWallNanos: 0)
        let ids = connects(s.eventsDue(0, now: 0))
        XCTAssertEqual(ids.count, 3)
        for id in ids { _ = s.connected(id, now: 0) }
        XCTAssertEqual(sends(s.eventsDue(3, now: 0)).count, 3)
        _ = s.failed(ids[0], cause: .ackTimeout, now: 0)
        let reopened = connects(s.wakeUp(now: SenderDispatchState.initialBackoffNanos))
        XCTAssertEqual(reopened.count, 1, "still one connection per unfinished event")
        XCTAssertLessThanOrEqual(s.openConnections, s.unfinished)
    }

    func testPersistentConnectionsRampUpInBursts() {
        let burst = SenderDispatchState.persistentConnectBurst
        var s = SenderDispatchState(mode: .persistent, scope: .connection, maxConnect: 5000, totalEvents: 5000, intervalNanos: 0, startWallNanos: 0)
        let first = connects(s.eventsDue(5000, now: 0))
        XCTAssertEqual(first.count, burst)
        let more = connects(s.connected(first[0], now: 0))
        XCTAssertEqual(more.count, 1, "each completed connect lets one more start")
        var opened = burst + 1
        var pending = Array(first.dropFirst()) + more
        while let id = pending.popLast() {
            let next = connects(s.connected(id, now: 0))
            opened += next.count
            pending += next
        }
        XCTAssertEqual(opened, 5000)
        XCTAssertEqual(s.openConnections, 5000)
    }

    func testPeerClosingAnIdleConnectionThatNeverRepliedBacksOff() {
        var s = SenderDispatchState(mode: .persistent, scope: .connection, maxConnect: 2, totalEvents: 2, intervalNanos: 0, startWallNanos: 0)
        let ids = connects(s.eventsDue(0, now: 0))
        _ = s.connected(ids[0], now: 0)
        let actions = s.peerClosed(ids[0], now: 10)
        XCTAssertEqual(connects(actions), [], "a peer closing every connection is not hammered")
        XCTAssertEqual(wakeUpTime(actions), 10 + SenderDispatchState.initialBackoffNanos)
        XCTAssertEqual(s.errors, 0, "still not an error")
    }

    func testCallbacksAfterStopAreNotErrors() {
        var s = SenderDispatchState(mode: .perEvent, scope: .connection, maxConnect: 2, totalEvents: 2, intervalNanos: 0, startWallNanos: 0)
        let ids = connects(s.eventsDue(2, now: 0))
        _ = s.stop()
        XCTAssertEqual(s.failed(ids[0], cause: .refused, now: 0), [])
        XCTAssertEqual(s.peerClosed(ids[1], now: 0), [])
        XCTAssertEqual(s.errors, 0)
        XCTAssertEqual(s.unfinished, 2)
    }

    // MARK: fail fast, counts

    func testConnectionsOpenedCountsOnlyConnectsThatOpened() {
        var s = SenderDispatchState(mode: .perEvent, scope: .connection, maxConnect: 3, totalEvents: 3, intervalNanos: 0, startWallNanos: 0)
        let ids = connects(s.eventsDue(3, now: 0))
        XCTAssertEqual(ids.count, 3)
        _ = s.failed(ids[0], cause: .refused, now: 0)
        XCTAssertEqual(s.connectionsOpened, 0, "attempts are not openings")
        _ = s.connected(ids[1], now: 0)
        XCTAssertEqual(s.connectionsOpened, 1)
    }

    func testTheConnectDeadlineStopsARunThatNeverConnected() {
        var s = SenderDispatchState(mode: .perEvent, scope: .connection, maxConnect: 2, totalEvents: 4, intervalNanos: 0, startWallNanos: 0)
        let ids = connects(s.eventsDue(4, now: 0))
        _ = s.failed(ids[0], cause: .refused, now: 0)
        let actions = s.connectDeadlineReached()
        XCTAssertEqual(actions.last, .unreachable)
        XCTAssertTrue(actions.contains(.close(ids[1])), "the connect still under way is closed")
        XCTAssertEqual(s.wakeUp(now: SenderDispatchState.maximumBackoffNanos), [], "nothing is retried")
    }

    func testAReceiverThatWasReachedIsRetriedPastTheConnectDeadline() {
        var s = SenderDispatchState(mode: .perEvent, scope: .connection, maxConnect: 1, totalEvents: 2, intervalNanos: 0, startWallNanos: 0)
        let first = connects(s.eventsDue(2, now: 0))[0]
        _ = s.connected(first, now: 0)
        let second = connects(s.replied(first, accepted: true, now: 0))[0]
        _ = s.failed(second, cause: .refused, now: 0)  // the receiver went away
        XCTAssertEqual(s.connectDeadlineReached(), [])
        XCTAssertEqual(connects(s.wakeUp(now: SenderDispatchState.initialBackoffNanos)).count, 1, "still retrying")
    }

    func testStoppingCountsNeverScheduledEventsAsNotSent() {
        var s = SenderDispatchState(mode: .perEvent, scope: .connection, maxConnect: 1, totalEvents: 10, intervalNanos: 10, startWallNanos: 0)
        let id = connects(s.eventsDue(3, now: 0))[0]
        _ = s.connected(id, now: 0)
        _ = s.replied(id, accepted: true, now: 0)
        _ = s.stop()
        XCTAssertEqual(s.scheduledUnfinished, 2, "scheduled, not acked: failed")
        XCTAssertEqual(s.notScheduled, 7, "never scheduled: not sent")
        XCTAssertEqual(s.unfinished, 9)
    }
}

final class SequenceTrackerTests: XCTestCase {
    func testClassification() {
        var t = SequenceTracker()
        XCTAssertEqual(t.record(run: "a", sequence: 0), .inOrder)
        XCTAssertEqual(t.record(run: "a", sequence: 2), .inOrder)
        XCTAssertEqual(t.record(run: "a", sequence: 1), .outOfOrder)
        XCTAssertEqual(t.record(run: "a", sequence: 1), .duplicate)
        XCTAssertEqual(t.record(run: "a", sequence: 5), .inOrder)
        XCTAssertEqual(t.record(run: "b", sequence: 0), .inOrder, "runs are tracked separately")
        XCTAssertEqual(t.unique, 5)
        XCTAssertEqual(t.duplicates, 1)
        XCTAssertEqual(t.outOfOrder, 1)
        XCTAssertEqual(t.missing, 2, "3 and 4 of run a never arrived")
    }
}
