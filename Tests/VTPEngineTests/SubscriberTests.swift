import BenchConfig
import CommandLineKit
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Protocol
@testable import VTPEngine
import XCTest

/// The subscriber role's decisions, without sockets.
final class SubscriptionStateTests: XCTestCase {
    private let ivo = "ivo://t/receiver"
    private let wall: Int64 = 1_795_486_949_000_000_000

    private func connectedState(at now: Int64 = 0) -> SubscriptionState {
        var state = SubscriptionState(localIVO: ivo)
        XCTAssertEqual(state.start(), [.connect])
        XCTAssertEqual(state.connected(now: now), [])
        return state
    }

    func testEveryEventIsAckedAndOnlyTimedOnesAreRecorded() {
        var state = connectedState()
        XCTAssertEqual(
            state.received(.event(ivorn: "ivo://a/b#1", valid: true), wallNanos: wall),
            [.record(ivorn: "ivo://a/b#1"), .ack(ivorn: "ivo://a/b#1")])
        // A subscriber never naks (a broker drops one that does): an untimed event is acked.
        XCTAssertEqual(state.received(.event(ivorn: "ivo://a/b#2", valid: false), wallNanos: wall), [.ack(ivorn: "ivo://a/b#2")])
        XCTAssertEqual(state.received(.unparseable, wallNanos: wall), [])
        XCTAssertEqual(state.events, 2)
        XCTAssertEqual(state.untimedEvents, 1)
        XCTAssertEqual(state.ignored, 1)
    }

    func testIamaliveAndAuthenticateAreAnsweredWithACopyCarryingOurResponse() {
        var state = connectedState()
        for role in [TransportMessage.Role.iamalive, .authenticate] {
            let question = TransportMessage(role: role, origin: "ivo://t/broker", timestamp: "2026-11-24T02:22:29Z")
            let answer = TransportMessage(
                role: role, origin: "ivo://t/broker", response: ivo, timestamp: ISO8601Time.formatSeconds(nanos: wall))
            XCTAssertEqual(state.received(.transport(question), wallNanos: wall), [.send(answer)], "\(role)")
        }
        let ack = TransportMessage.ack(eventIVORN: "ivo://a/b#1", localIVO: "ivo://t/broker", nowNanos: wall)
        XCTAssertEqual(state.received(.transport(ack), wallNanos: wall), [], "an ack needs no answer")
        XCTAssertEqual(state.iamalivesAnswered, 1)
        XCTAssertEqual(state.authenticatesAnswered, 1)
        XCTAssertEqual(state.ignored, 1)
    }

    func testReconnectsBackOffGeometricallyAndStartOverAfterAHealthyConnection() {
        var state = SubscriptionState(localIVO: ivo)
        _ = state.start()
        var now: Int64 = 1_000
        var waits: [Int64] = []
        for _ in 0..<4 {  // refused four times
            guard case .reconnect(let at)? = state.closed(now: now).first else { return XCTFail("no reconnect") }
            waits.append(at - now)
            XCTAssertEqual(state.reconnectDue(now: at - 1), [], "not before the back-off")
            now = at
            XCTAssertEqual(state.reconnectDue(now: now), [.connect])
        }
        XCTAssertEqual(waits, [100_000_000, 200_000_000, 400_000_000, 800_000_000])
        // Opens, but the broker closes at once: still backing off.
        _ = state.connected(now: now)
        guard case .reconnect(let at)? = state.closed(now: now + 1_000).first else { return XCTFail() }
        XCTAssertEqual(at - (now + 1_000), 1_600_000_000)
        now = at
        _ = state.reconnectDue(now: now)
        // Up for longer than the reset delay: the next wait is the first one again.
        _ = state.connected(now: now)
        let later = now + SubscriptionState.resetAfterNanos
        XCTAssertEqual(state.closed(now: later), [.reconnect(atNanos: later + SubscriptionState.initialBackoffNanos)])
        XCTAssertEqual(state.connectFailures, 4)
        XCTAssertEqual(state.connections, 2)
        XCTAssertEqual(state.disconnects, 2)
        XCTAssertEqual(SubscriptionState.backoffNanos(afterFailures: 60), SubscriptionState.maximumBackoffNanos)
    }

    func testAfterStopNothingReconnectsAndLateInputsAreIgnored() {
        var state = connectedState()
        XCTAssertEqual(state.stop(), [.close])
        XCTAssertEqual(state.closed(now: 10), [])
        XCTAssertEqual(state.reconnectDue(now: .max), [])
        XCTAssertEqual(state.received(.event(ivorn: "ivo://a/b#1", valid: true), wallNanos: wall), [])
        var waiting = SubscriptionState(localIVO: ivo)
        _ = waiting.start()
        _ = waiting.closed(now: 0)
        XCTAssertEqual(waiting.stop(), [], "nothing open to close")
        XCTAssertEqual(waiting.reconnectDue(now: .max), [])
    }

    func testASilentBrokerIsClosedAndThenReconnected() {
        var state = connectedState()
        XCTAssertEqual(state.silent(), [.close])
        XCTAssertEqual(state.closed(now: 5).count, 1)
        XCTAssertEqual(state.silentDisconnects, 1)
        XCTAssertEqual(state.silent(), [], "not connected: nothing to close")
    }

    func testBrokerDuplicatesAreCountedByIvornPerBrokerWithinTheCapacity() {
        var duplicates = BrokerDuplicates(brokers: 2, capacity: 3)
        XCTAssertFalse(duplicates.record(ivorn: "a", broker: 0))
        XCTAssertTrue(duplicates.record(ivorn: "a", broker: 1))
        XCTAssertTrue(duplicates.record(ivorn: "a", broker: 0), "the same broker again is a duplicate too")
        for ivorn in ["b", "c", "d"] { duplicates.record(ivorn: ivorn, broker: 0) }
        XCTAssertFalse(duplicates.record(ivorn: "a", broker: 1), "forgotten: older than the last 3")
        XCTAssertFalse(duplicates.record(ivorn: "x", broker: 7), "an unknown broker index is ignored")
        XCTAssertEqual(duplicates.duplicates, [1, 1])
        XCTAssertEqual(duplicates.totalDuplicates, 2)
    }
}

/// A broker on loopback that the test drives by hand: accepts connections and hands them over.
final class RawBroker: Sendable {
    private let server: Channel
    private let accepted: NIOLockedValueBox<[RawClient]>

    init(group: EventLoopGroup) throws {
        let accepted = NIOLockedValueBox<[RawClient]>([])
        self.accepted = accepted
        server = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let inbound = NIOLockedValueBox(ByteBuffer())
                    try channel.pipeline.syncOperations.addHandler(RawClient.Collector(inbound))
                    accepted.withLockedValue { $0.append(RawClient(channel: channel, inbound: inbound)) }
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    var port: Int { server.localAddress?.port ?? 0 }

    /// The `index`th connection accepted (from 0), waiting up to `timeout` seconds for it.
    func connection(_ index: Int, timeout: Double = 10) throws -> RawClient {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let client = accepted.withLockedValue({ $0.count > index ? $0[index] : nil }) { return client }
            Thread.sleep(forTimeInterval: 0.01)
        }
        throw ChannelError.connectTimeout(.seconds(Int64(timeout)))
    }

    var acceptedCount: Int { accepted.withLockedValue { $0.count } }

    func close() { server.close(promise: nil) }
}

/// `vtp-receiver --subscribe` on loopback against hand-driven brokers.
final class SubscriberEndToEndTests: XCTestCase {
    private var group: MultiThreadedEventLoopGroup!
    private let builder = TestEventBuilder(localIVO: "ivo://t/author", eventSize: 0)
    private let receiverIVO = "ivo://t/subscriber"

    override func setUp() { group = MultiThreadedEventLoopGroup(numberOfThreads: 2) }
    override func tearDown() { try? group.syncShutdownGracefully() }

    private func subscriber(to brokers: [RawBroker]) throws -> VTPReceiver {
        var config = BenchConfiguration()
        config.reportInterval = 60
        config.receiverIVO = receiverIVO
        var options = ReceiverOptions(configuration: config)
        options.subscriptions = brokers.map { HostAndPort(host: "127.0.0.1", port: $0.port) }
        let receiver = try VTPReceiver(options: options, group: group, output: { _ in }, errorOutput: { _ in })
        try receiver.startSubscriptions().wait()
        return receiver
    }

    private func framed(_ sequences: Range<UInt64>) -> [UInt8] {
        var buffer = ByteBuffer()
        for sequence in sequences {
            builder.writeFramedDocument(sequence: sequence, sentNanos: WallClock.nowNanos(), into: &buffer)
        }
        return Array(buffer.readableBytesView)
    }

    private func readTransport(_ connection: RawClient) throws -> TransportMessage {
        guard case .transport(let message) = try VTPMessage.parse(try connection.readFrame()) else {
            throw VTPMessageError.unexpectedRoot("VOEvent")
        }
        return message
    }

    func testItAnswersTheBrokerAcksPipelinedEventsByIvornAndReconnectsAfterAClose() throws {
        let broker = try RawBroker(group: group)
        defer { broker.close() }
        let receiver = try subscriber(to: [broker])
        let first = try broker.connection(0)
        // Comet opens with authenticate; the answer is a copy naming the subscriber.
        try first.send(Array(VTPFraming.frame(TransportMessage.authenticate(localIVO: "ivo://t/broker").xml).readableBytesView))
        let authenticate = try readTransport(first)
        XCTAssertEqual(authenticate.role, .authenticate)
        XCTAssertEqual(authenticate.origin, "ivo://t/broker")
        XCTAssertEqual(authenticate.response, receiverIVO)
        // A window's worth in one write: every one acked, by ivorn.
        try first.send(framed(0..<5))
        let acks = try (0..<5).map { _ in try readTransport(first) }
        XCTAssertEqual(acks.map(\.role), Array(repeating: .ack, count: 5))
        XCTAssertEqual(Set(acks.map(\.origin)), Set((0..<5).map { builder.ivorn(sequence: $0) }))
        XCTAssertEqual(acks.first?.response, receiverIVO)
        try first.send(Array(VTPFraming.frame(TransportMessage.iamalive(localIVO: "ivo://t/broker").xml).readableBytesView))
        let iamalive = try readTransport(first)
        XCTAssertEqual([iamalive.role.rawValue, iamalive.origin, iamalive.response], ["iamalive", "ivo://t/broker", receiverIVO])

        // The broker goes away: the subscriber comes back (after 100 ms) and gets the rest.
        first.close()
        let second = try broker.connection(1)
        try second.send(framed(3..<8))  // 3 and 4 again: a broker resending after a reconnect
        for _ in 0..<5 { XCTAssertEqual(try readTransport(second).role, .ack) }

        receiver.stop()
        let summary = try receiver.done.wait()
        XCTAssertEqual(summary.received, 10)
        XCTAssertEqual(summary.unique, 8)
        XCTAssertEqual(summary.naks, 0)
        let via = try XCTUnwrap(summary.subscriptions?.first)
        XCTAssertEqual(via.broker, "127.0.0.1:\(broker.port)")
        XCTAssertEqual(via.events, 10)
        XCTAssertEqual(via.duplicates, 2)
        XCTAssertEqual(via.connections, 2)
        XCTAssertEqual(via.disconnects, 1)
        XCTAssertEqual(via.iamalivesAnswered, 1)
        XCTAssertEqual(via.authenticatesAnswered, 1)
        XCTAssertEqual(broker.acceptedCount, 2, "no reconnect after stop")
    }

    func testEventsThroughTwoBrokersAreCountedOnceAndTheCopiesAsDuplicates() throws {
        let brokers = try [RawBroker(group: group), RawBroker(group: group)]
        defer { brokers.forEach { $0.close() } }
        let receiver = try subscriber(to: brokers)
        let connections = try brokers.map { try $0.connection(0) }
        try connections[0].send(framed(0..<20))
        for _ in 0..<20 { _ = try readTransport(connections[0]) }
        try connections[1].send(framed(10..<30))
        for _ in 0..<20 { _ = try readTransport(connections[1]) }
        receiver.stop()
        let summary = try receiver.done.wait()
        XCTAssertEqual(summary.received, 40)
        XCTAssertEqual(summary.unique, 30)
        XCTAssertEqual(summary.subscriptions?.map(\.events), [20, 20])
        XCTAssertEqual(summary.subscriptions?.map(\.duplicates), [0, 10])
        let lines = ReceiverSummaryText.lines(summary)
        XCTAssertTrue(lines.contains { $0.contains("via broker 127.0.0.1:\(brokers[1].port): 20 events (10 duplicates)") }, "\(lines)")
    }

    func testABrokerThatIsNotThereYetIsRetriedUntilItIs() throws {
        // Find a free port, then leave it closed for a while.
        let probe = try RawBroker(group: group)
        let port = probe.port
        probe.close()
        var config = BenchConfiguration()
        config.reportInterval = 60
        var options = ReceiverOptions(configuration: config)
        options.subscriptions = [HostAndPort(host: "127.0.0.1", port: port)]
        let (lines, errors) = (NIOLockedValueBox<[String]>([]), NIOLockedValueBox<[String]>([]))
        let receiver = try VTPReceiver(
            options: options, group: group, output: { l in lines.withLockedValue { $0.append(l) } },
            errorOutput: { l in errors.withLockedValue { $0.append(l) } })
        try receiver.startSubscriptions().wait()
        Thread.sleep(forTimeInterval: 0.5)  // 100 + 200 ms of back-off: at least two refusals
        let server = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: port).wait()
        defer { server.close(promise: nil) }
        let deadline = Date().addingTimeInterval(15)  // the back-off is at most 1.6 s by now
        while !lines.withLockedValue({ $0.contains("vtp-receiver: subscribed to 127.0.0.1:\(port)") }), Date() < deadline {
            Thread.sleep(forTimeInterval: 0.02)
        }
        receiver.stop()
        let summary = try receiver.done.wait()
        let via = try XCTUnwrap(summary.subscriptions?.first)
        XCTAssertGreaterThanOrEqual(via.connectFailures, 2)
        XCTAssertEqual(via.connections, 1)
        XCTAssertTrue(errors.withLockedValue { $0 }.contains { $0.contains("cannot connect") && $0.contains("retrying in") })
    }
}
