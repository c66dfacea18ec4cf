import BenchConfig
@testable import VTPEngine
import XCTest

/// The window logic, without channels: the ack window itself and the dispatch state using it.
final class AckWindowTests: XCTestCase {
    typealias Action = SenderDispatchState.Action

    func testRepliesInAnyOrderAreMatchedByKeyAndTheDeadlineFollowsTheOldestWaiting() {
        var w = AckWindow<String, Int>(capacity: 3)
        XCTAssertTrue(w.insert(0, for: "a", deadline: 100))
        XCTAssertTrue(w.insert(1, for: "b", deadline: 200))
        XCTAssertFalse(w.insert(9, for: "b", deadline: 250), "a key already waiting")
        XCTAssertTrue(w.insert(2, for: "c", deadline: 300))
        XCTAssertTrue(w.isFull)
        XCTAssertFalse(w.insert(3, for: "d", deadline: 400), "full")
        XCTAssertEqual(w.remove("b"), 1, "out of order")
        XCTAssertNil(w.remove("b"), "a reply for what is not waiting")
        XCTAssertEqual(w.nextDeadline, 100)
        XCTAssertFalse(w.hasExpired(now: 99))
        XCTAssertTrue(w.hasExpired(now: 100))
        XCTAssertEqual(w.remove("a"), 0)
        XCTAssertEqual(w.nextDeadline, 300, "b was replied to: c is the oldest waiting")
        XCTAssertEqual(w.room, 2)
        XCTAssertEqual(w.removeOldest(), 2)
        XCTAssertTrue(w.isEmpty)
        XCTAssertNil(w.nextDeadline)
        XCTAssertFalse(w.hasExpired(now: .max))
    }

    func testRemoveAllReturnsTheWaitingInWriteOrderEvenWhenAKeyWasWrittenAgain() {
        var w = AckWindow<String, Int>(capacity: 4)
        w.insert(0, for: "a", deadline: 10)
        w.insert(1, for: "b", deadline: 20)
        w.insert(2, for: "c", deadline: 30)
        _ = w.remove("b")
        w.insert(3, for: "b", deadline: 40)  // b again, now after c
        XCTAssertEqual(w.remove("a"), 0)
        XCTAssertEqual(w.nextDeadline, 30, "the stale place of b is not its deadline")
        XCTAssertEqual(w.removeAll(), [2, 3])
        XCTAssertEqual(w.count, 0)
    }

    // MARK: the dispatch state with a window

    private func connects(_ actions: [Action]) -> [ConnectionID] {
        actions.compactMap { if case .connect(let id) = $0 { return id } else { return nil } }
    }
    private func sent(_ actions: [Action]) -> [UInt64] {
        actions.compactMap { if case .send(_, let e) = $0 { return e.sequence } else { return nil } }
    }

    func testAConnectionTakesAWholeWindowAndEachReplyFreesOneSlot() {
        var s = SenderDispatchState(
            mode: .persistent, scope: .connection, maxConnect: 1, totalEvents: 10, intervalNanos: 0, startWallNanos: 0,
            window: 4)
        let id = connects(s.eventsDue(10, now: 0))[0]
        XCTAssertEqual(sent(s.connected(id, now: 0)), [0, 1, 2, 3], "four unacked at once")
        XCTAssertEqual(s.inFlight, 4)
        XCTAssertEqual(s.connections[id]?.state, .busy(inFlight: 4))
        XCTAssertEqual(s.backlog, 6)
        // Replies out of order, matched by sequence.
        XCTAssertEqual(sent(s.replied(id, sequence: 2, accepted: true, now: 0)), [4])
        XCTAssertEqual(sent(s.replied(id, sequence: 0, accepted: false, now: 0)), [5])
        XCTAssertEqual(s.acked, 1)
        XCTAssertEqual(s.nakked, 1)
        // A reply for an event not in flight on this connection is a bad reply.
        let bad = s.replied(id, sequence: 2, accepted: true, now: 0)
        XCTAssertTrue(bad.contains(.close(id)))
        XCTAssertEqual(s.errorsByCause[.badReply], 1)
    }

    func testAFailureRequeuesTheWholeWindowInWriteOrder() {
        var s = SenderDispatchState(
            mode: .persistent, scope: .connection, maxConnect: 1, totalEvents: 6, intervalNanos: 0, startWallNanos: 0,
            window: 3)
        let id = connects(s.eventsDue(6, now: 0))[0]
        XCTAssertEqual(sent(s.connected(id, now: 0)), [0, 1, 2])
        _ = s.replied(id, sequence: 1, accepted: true, now: 0)  // 3 goes out
        _ = s.failed(id, cause: .ackTimeout, now: 0)
        XCTAssertEqual(s.errorsByCause[.ackTimeout], 1)
        XCTAssertEqual(s.inFlight, 0)
        let reopened = connects(s.wakeUp(now: SenderDispatchState.initialBackoffNanos))[0]
        let resend = s.connected(reopened, now: 0)
        XCTAssertEqual(sent(resend), [0, 2, 3], "the unacked, oldest first")
        XCTAssertEqual(s.resent, 3)
        XCTAssertEqual(s.sent, 4)
        let attempts = resend.compactMap { if case .send(_, let e) = $0 { return e.attempts } else { return nil } }
        XCTAssertEqual(attempts, [1, 1, 1], "each written once without a reply")
    }

    func testNoMoreConnectionsThanTheUnfinishedEventsNeedAWindowEach() {
        var s = SenderDispatchState(
            mode: .persistent, scope: .connection, maxConnect: 8, totalEvents: 10, intervalNanos: 0, startWallNanos: 0,
            window: 4)
        XCTAssertEqual(connects(s.eventsDue(10, now: 0)).count, 3, "10 events, 4 each")
    }

    func testPerEventConnectionsCarryOneEventWhateverTheWindow() {
        var s = SenderDispatchState(
            mode: .perEvent, scope: .connection, maxConnect: 2, totalEvents: 4, intervalNanos: 0, startWallNanos: 0,
            window: 16)
        XCTAssertEqual(s.window, 1)
        let ids = connects(s.eventsDue(4, now: 0))
        XCTAssertEqual(ids.count, 2)
        XCTAssertEqual(sent(s.connected(ids[0], now: 0)), [0])
    }

    func testTheFinishingReplyClosesEveryConnection() {
        var s = SenderDispatchState(
            mode: .persistent, scope: .connection, maxConnect: 2, totalEvents: 4, intervalNanos: 0, startWallNanos: 0,
            window: 2)
        let ids = connects(s.eventsDue(4, now: 0))
        XCTAssertEqual(ids.count, 2)
        XCTAssertEqual(sent(s.connected(ids[0], now: 0)), [0, 1])
        XCTAssertEqual(sent(s.connected(ids[1], now: 0)), [2, 3])
        for (id, sequence) in [(ids[1], UInt64(3)), (ids[0], 0), (ids[1], 2)] {
            XCTAssertFalse(s.replied(id, sequence: sequence, accepted: true, now: 0).contains(.finished))
        }
        let last = s.replied(ids[0], sequence: 1, accepted: true, now: 0)
        XCTAssertEqual(last.last, .finished)
        XCTAssertEqual(Set(last.dropLast()), [.close(ids[0]), .close(ids[1])])
    }
}
