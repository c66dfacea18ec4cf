import BenchConfig
@testable import VTPEngine
import XCTest

/// The dispatch state's failover inputs, without sockets: a target's connections rerouted
/// (their unacked events resent, no back-off), a fresh start, and failback's retiring.
final class DispatchFailoverTests: XCTestCase {
    typealias Action = SenderDispatchState.Action

    private func connects(_ actions: [Action]) -> [ConnectionID] {
        actions.compactMap { if case .connect(let id) = $0 { return id } else { return nil } }
    }
    private func sends(_ actions: [Action]) -> [(ConnectionID, PendingEvent)] {
        actions.compactMap { if case .send(let id, let e) = $0 { return (id, e) } else { return nil } }
    }

    private func persistent(window: Int, maxConnect: Int, events: Int) -> SenderDispatchState {
        SenderDispatchState(
            mode: .persistent, scope: .connection, maxConnect: maxConnect, totalEvents: events, intervalNanos: 0,
            startWallNanos: 0, window: window)
    }

    func testRerouteResendsEveryUnackedEventInOrderWithoutBackoff() {
        var s = persistent(window: 3, maxConnect: 2, events: 10)
        let ids = connects(s.eventsDue(10, now: 0))
        XCTAssertEqual(ids.count, 2)
        let written = sends(s.connected(ids[0], now: 0)) + sends(s.connected(ids[1], now: 0))
        XCTAssertEqual(written.map(\.1.sequence), [0, 1, 2, 3, 4, 5])
        _ = s.replied(ids[0], sequence: 0, accepted: true, now: 1)  // frees room: 6 goes out there
        let (actions, unacked) = s.reroute(ids, failure: .closedBeforeAck, now: 2)
        XCTAssertEqual(Set(unacked.map(\.sequence)), [1, 2, 3, 4, 5, 6], "written, not acked")
        XCTAssertTrue(actions.contains(.close(ids[0])) && actions.contains(.close(ids[1])))
        XCTAssertEqual(connects(actions).count, 2, "reconnects at once: no back-off")
        XCTAssertEqual(s.errors, 1, "the one failure that showed it")
        XCTAssertEqual(s.errorsByCause, [.closedBeforeAck: 1])
        let next = connects(actions)
        let resent = sends(s.connected(next[0], now: 3)) + sends(s.connected(next[1], now: 3))
        XCTAssertEqual(resent.map(\.1.sequence), [1, 2, 3, 4, 5, 6], "lowest first")
        XCTAssertTrue(resent.allSatisfy { $0.1.attempts == 1 })
        XCTAssertEqual(s.resent, 6)
        XCTAssertEqual(s.acked, 1)
    }

    func testRerouteOfConnectingPerEventConnectionsIsNotAResend() {
        var s = SenderDispatchState(mode: .perEvent, scope: .connection, maxConnect: 2, totalEvents: 4, intervalNanos: 0, startWallNanos: 0)
        let ids = connects(s.eventsDue(4, now: 0))
        _ = s.connected(ids[0], now: 0)  // event 0 written; event 1's connect still under way
        let (actions, unacked) = s.reroute(ids, failure: nil, now: 1)
        XCTAssertEqual(unacked.map(\.sequence), [0])
        XCTAssertEqual(s.errors, 0, "a failover closing the other connections counts no errors")
        let next = connects(actions)
        let resent = sends(s.connected(next[0], now: 2)) + sends(s.connected(next[1], now: 2))
        XCTAssertEqual(resent.map(\.1.sequence), [0, 1])
        XCTAssertEqual(resent.map(\.1.attempts), [1, 0], "0 was written before, 1 never was")
    }

    func testRestartBackoffEndsTheOldTargetsBackoffOrWaitsForTheNewOnes() {
        var s = SenderDispatchState(mode: .perEvent, scope: .connection, maxConnect: 1, totalEvents: 2, intervalNanos: 0, startWallNanos: 0)
        let id = connects(s.eventsDue(2, now: 0))[0]
        XCTAssertEqual(connects(s.failed(id, cause: .refused, now: 10)), [], "backing off")
        s.restartBackoff(notBeforeNanos: nil)
        XCTAssertEqual(connects(s.wakeUp(now: 11)).count, 1, "a new target: at once")

        var t = SenderDispatchState(mode: .perEvent, scope: .connection, maxConnect: 2, totalEvents: 2, intervalNanos: 0, startWallNanos: 0)
        let ids = connects(t.eventsDue(2, now: 0))
        t.restartBackoff(notBeforeNanos: 500)
        let (actions, _) = t.reroute(ids, failure: .refused, now: 20)
        XCTAssertEqual(connects(actions), [])
        XCTAssertTrue(actions.contains(.wakeUp(atNanos: 500)))
        XCTAssertEqual(connects(t.wakeUp(now: 500)).count, 1, "then one probe connection at a time")
    }

    func testRetiredConnectionsFinishTheirWindowAndClose() {
        var s = persistent(window: 2, maxConnect: 2, events: 6)
        let ids = connects(s.eventsDue(3, now: 0))
        XCTAssertEqual(ids.count, 2)
        _ = s.connected(ids[0], now: 0)  // 0, 1
        _ = s.connected(ids[1], now: 0)  // 2
        let retire = s.retire(ids, now: 1)
        XCTAssertEqual(connects(retire), [], "both busy: they stay until their replies")
        XCTAssertEqual(sends(s.eventsDue(6, now: 2)).count, 0, "retiring connections take no new events")
        let first = s.replied(ids[0], sequence: 0, accepted: true, now: 3)
        XCTAssertFalse(first.contains(.close(ids[0])), "one still in flight")
        XCTAssertEqual(sends(first).count, 0)
        let last = s.replied(ids[0], sequence: 1, accepted: true, now: 4)
        XCTAssertTrue(last.contains(.close(ids[0])), "closes after its last reply")
        XCTAssertEqual(connects(last).count, 1, "a new connection (to the preferred target) takes the work")
        XCTAssertEqual(s.acked, 2)
    }
}
