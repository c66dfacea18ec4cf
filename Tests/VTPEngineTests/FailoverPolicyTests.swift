import BenchConfig
import Foundation
import VTPEngine
import XCTest

/// The failover policy without sockets: which target is used, the per-target back-off, the
/// records the summary reports (cause, unacked, resent, RTO) and failback.
final class FailoverPolicyTests: XCTestCase {
    private let a = SenderTarget(host: "10.0.0.1", port: 8098)
    private let b = SenderTarget(host: "10.0.0.2", port: 8098)
    private let c = SenderTarget(host: "10.0.0.3", port: 8098)
    private let ms: Int64 = 1_000_000
    private let s: Int64 = 1_000_000_000

    private func policy(_ targets: [SenderTarget]? = nil, mode: FailoverMode = .ordered, failback: Bool = false)
        -> FailoverPolicy
    {
        FailoverPolicy(targets: targets ?? [a, b], mode: mode, failback: failback, startNanos: 0)
    }

    func testOrderedMovesToTheNextTargetAndRecordsTheFailover() {
        var p = policy()
        XCTAssertEqual(p.current, 0)
        _ = p.acked(target: 0, now: 1 * s)
        let actions = p.failed(target: 0, cause: .reset, now: 2 * s)
        XCTAssertEqual(actions, [.failover(from: 0, to: 1, notBeforeNanos: nil)])
        XCTAssertEqual(p.current, 1)
        p.requeued([7, 8, 9])
        let record = p.failovers[0]
        XCTAssertEqual(record.from, "10.0.0.1:8098")
        XCTAssertEqual(record.to, "10.0.0.2:8098")
        XCTAssertEqual(record.detectedAtSeconds, 2)
        XCTAssertEqual(record.cause, .reset)
        XCTAssertEqual(record.unackedAtFailure, 3)
        XCTAssertNil(record.rtoSeconds, "not recovered yet")
    }

    func testRTOIsFromTheLastAckBeforeTheFailureToTheFirstAckFromTheNextTarget() {
        var p = policy()
        _ = p.acked(target: 0, now: 1 * s)
        _ = p.failed(target: 0, cause: .ackTimeout, now: 4 * s)
        _ = p.acked(target: 1, now: 4 * s + 500 * ms)
        _ = p.acked(target: 1, now: 5 * s)
        XCTAssertEqual(p.failovers[0].rtoSeconds, 3.5, "1 s → 4.5 s; later acks do not move it")
    }

    func testWithoutAnyAckTheRTOCountsFromTheStart() {
        var p = policy()
        _ = p.failed(target: 0, cause: .refused, now: 100 * ms)
        _ = p.acked(target: 1, now: 300 * ms)
        XCTAssertEqual(p.failovers[0].rtoSeconds ?? 0, 0.3, accuracy: 1e-9)
    }

    func testResendsOfHandedOnEventsAreCountedOnceEach() {
        var p = policy()
        p.sending(sequence: 1, to: 0)
        p.sending(sequence: 2, to: 0)
        _ = p.failed(target: 0, cause: .reset, now: s)
        p.requeued([1, 2])
        p.sending(sequence: 1, to: 1)
        p.sending(sequence: 1, to: 1)  // a retry on the new target is not a second hand-over
        p.sending(sequence: 3, to: 1)
        XCTAssertEqual(p.failovers[0].resent, 1)
        p.sending(sequence: 2, to: 1)
        XCTAssertEqual(p.failovers[0].resent, 2)
        XCTAssertEqual(p.targetSummaries.map(\.sent), [2, 4])
    }

    func testSeveralConnectionsSeeingOneOutageCountOnce() {
        var p = policy([a, b, c])
        XCTAssertEqual(p.failed(target: 0, cause: .refused, now: s).count, 1)
        XCTAssertEqual(p.failed(target: 0, cause: .refused, now: s + ms), [], "the same outage of a")
        XCTAssertEqual(p.current, 1)
        XCTAssertEqual(p.failovers.count, 1)
        XCTAssertEqual(p.targetSummaries[0].failures, 1)
    }

    func testAFailedTargetIsSkippedDuringItsBackoffAndTheOrderWraps() {
        var p = policy([a, b, c])
        _ = p.failed(target: 0, cause: .refused, now: 0)
        _ = p.failed(target: 1, cause: .refused, now: 10 * ms)
        XCTAssertEqual(p.current, 2, "a backs off: c is next")
        // c fails after a's back-off (0.5 s) is over: the order wraps to a.
        XCTAssertEqual(
            p.failed(target: 2, cause: .connectTimeout, now: 600 * ms), [.failover(from: 2, to: 0, notBeforeNanos: nil)])
    }

    func testWhenEveryTargetBacksOffTheSoonestIsNextAndNotBeforeItsBackoff() {
        var p = policy()
        _ = p.failed(target: 0, cause: .refused, now: 0)  // a: until 0.5 s
        let actions = p.failed(target: 1, cause: .refused, now: 100 * ms)  // b: until 0.6 s
        XCTAssertEqual(actions, [.failover(from: 1, to: 0, notBeforeNanos: 500 * ms)])
        // a fails again: its back-off doubles (1 s), so b (0.6 s) is the soonest.
        XCTAssertEqual(
            p.failed(target: 0, cause: .refused, now: 550 * ms), [.failover(from: 0, to: 1, notBeforeNanos: 600 * ms)])
        XCTAssertFalse(p.isUsable(0, now: 1_500 * ms))
        XCTAssertTrue(p.isUsable(0, now: 1_550 * ms))
    }

    func testTheBackoffIsGeometricAndBounded() {
        XCTAssertEqual(FailoverPolicy.backoff(failures: 1), FailoverPolicy.initialBackoffNanos)
        XCTAssertEqual(FailoverPolicy.backoff(failures: 2), 2 * FailoverPolicy.initialBackoffNanos)
        XCTAssertEqual(FailoverPolicy.backoff(failures: 4), 8 * FailoverPolicy.initialBackoffNanos)
        XCTAssertEqual(FailoverPolicy.backoff(failures: 1000), FailoverPolicy.maximumBackoffNanos)
    }

    func testAnAckEndsTheBackoffOfItsTarget() {
        var p = policy()
        _ = p.failed(target: 0, cause: .refused, now: 0)
        _ = p.failed(target: 1, cause: .refused, now: 10 * ms)
        _ = p.acked(target: 0, now: 600 * ms)
        XCTAssertTrue(p.isUsable(0, now: 600 * ms))
        // The next failure of a starts the back-off from the beginning again.
        _ = p.failed(target: 0, cause: .refused, now: 700 * ms)
        XCTAssertTrue(p.isUsable(0, now: 1_200 * ms))
    }

    func testOneTargetNeverFailsOver() {
        var p = policy([a])
        XCTAssertEqual(p.failed(target: 0, cause: .refused, now: 0), [])
        XCTAssertEqual(p.current, 0)
        XCTAssertEqual(p.failovers, [])
    }

    func testAllModeKeepsEveryTargetAndCountsPerTarget() {
        var p = policy(mode: .all)
        p.sending(sequence: 0, to: 0)
        p.sending(sequence: 0, to: 1)
        p.sending(sequence: 1, to: 0)
        p.sending(sequence: 1, to: 1)
        _ = p.acked(target: 0, now: s)
        p.nakked(target: 0)
        XCTAssertEqual(p.failed(target: 1, cause: .ackTimeout, now: 2 * s), [], "all: nothing to switch")
        XCTAssertEqual(p.failovers, [])
        XCTAssertEqual(
            p.targetSummaries,
            [
                TargetSummary(target: "10.0.0.1:8098", sent: 2, acked: 1, nakked: 1, failed: 0, failures: 0),
                TargetSummary(target: "10.0.0.2:8098", sent: 2, acked: 0, nakked: 0, failed: 2, failures: 1),
            ])
    }

    func testFailbackProbesTheEarlierTargetAfterItsBackoffAndReturnsWhenItAccepts() {
        var p = policy(failback: true)
        let actions = p.failed(target: 0, cause: .refused, now: 0)
        XCTAssertEqual(
            actions, [.failover(from: 0, to: 1, notBeforeNanos: nil), .wakeUp(atNanos: FailoverPolicy.initialBackoffNanos)])
        XCTAssertEqual(p.wakeUp(now: 500 * ms), [.probe(0)])
        XCTAssertEqual(p.wakeUp(now: 510 * ms), [], "one probe at a time")
        // Still refused: the next probe waits twice as long.
        XCTAssertEqual(p.probed(target: 0, accepted: false, now: 510 * ms), [.wakeUp(atNanos: 1_510 * ms)])
        XCTAssertEqual(p.wakeUp(now: 1_510 * ms), [.probe(0)])
        XCTAssertEqual(p.probed(target: 0, accepted: true, now: 1_520 * ms), [.failback(from: 1, to: 0)])
        XCTAssertEqual(p.current, 0)
        XCTAssertEqual(p.failbacks, [FailbackRecord(from: "10.0.0.2:8098", to: "10.0.0.1:8098", atSeconds: 1.52)])
    }

    func testWithoutFailbackTheSenderStaysOnTheNextTarget() {
        var p = policy()
        XCTAssertEqual(p.failed(target: 0, cause: .refused, now: 0), [.failover(from: 0, to: 1, notBeforeNanos: nil)])
        XCTAssertEqual(p.wakeUp(now: 10 * s), [])
        XCTAssertEqual(p.current, 1)
    }

    func testCausesFromConnectionFailures() {
        XCTAssertEqual(FailoverCause(.refused), .refused)
        XCTAssertEqual(FailoverCause(.closedBeforeAck), .reset)
        XCTAssertEqual(FailoverCause(.ackTimeout), .ackTimeout)
        XCTAssertEqual(FailoverCause(.connectTimeout), .connectTimeout)
        XCTAssertEqual(FailoverCause(.badReply), .error)
        XCTAssertEqual(FailoverCause.ackTimeout.rawValue, "ack_timeout")
        XCTAssertEqual(FailoverCause.connectTimeout.rawValue, "connect_timeout")
    }

    func testTheRecordsEncodeWithTheIssuesKeys() throws {
        var p = policy()
        _ = p.failed(target: 0, cause: .ackTimeout, now: 2 * s)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = String(decoding: try encoder.encode(p.failovers[0]), as: UTF8.self)
        XCTAssertEqual(
            json,
            #"{"cause":"ack_timeout","detected_at_s":2,"from":"10.0.0.1:8098","resent":0,"rto_s":null,"to":"10.0.0.2:8098","unacked_at_failure":0}"#
        )
        let target = String(decoding: try encoder.encode(p.targetSummaries[1]), as: UTF8.self)
        XCTAssertEqual(target, #"{"acked":0,"failed":0,"failures":0,"nakked":0,"sent":0,"target":"10.0.0.2:8098"}"#)
    }
}

