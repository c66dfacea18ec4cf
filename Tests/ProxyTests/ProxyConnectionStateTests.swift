import NIOCore
import PGWire
import XCTest

@testable import ProxyCore

/// The proxy's connection state machine driven by events, without sockets: each test feeds
/// what the channels would report and checks the actions it asks for.
final class ProxyConnectionStateTests: XCTestCase {
    private typealias State = ProxyConnectionState
    private var random = SeededGenerator(state: 1)
    private let ms: Int64 = 1_000_000
    private let start: Int64 = 1_000_000_000

    private func machine(_ protocol: ProxyProtocol = .raw, startupTimeoutNanos: Int64 = 10_000_000_000) -> State {
        let spec = ProxySpec(
            name: "p", listen: HostPort(host: "127.0.0.1", port: 0), upstream: HostPort(host: "127.0.0.1", port: 5432),
            protocol: `protocol`, startupTimeoutNanos: startupTimeoutNanos, maxPendingStartups: 4)
        return State(settings: .init(connectionID: 7, spec: spec))
    }

    private func snapshot(_ toxics: [Toxic], generation: Int = 1) -> ToxicsSnapshot {
        ToxicsSnapshot(generation: generation, toxics: toxics)
    }

    /// Actions as short text, so a sequence reads as one line.
    private func text(_ actions: [State.Action]) -> [String] {
        actions.map { action in
            switch action {
            case .write(let side, let bytes): return "write \(side) \(bytes.readableBytes)"
            case .flush(let side): return "flush \(side)"
            case .writeAndFlush(let side, let bytes): return "writeAndFlush \(side) \(bytes.readableBytes)"
            case .closeOutput(let side): return "closeOutput \(side)"
            case .sendFatal(let bytes): return "sendFatal \(fatalCode(bytes) ?? "?")"
            case .read(let side): return "read \(side)"
            case .connectUpstream: return "connectUpstream"
            case .schedule(let timer, let at): return "schedule \(timer) +\((at - start) / ms)ms"
            case .cancel(let timer): return "cancel \(timer)"
            case .log(let record): return "log \(event(record))"
            case .requestStartupSlot: return "requestStartupSlot"
            case .releaseStartupSlot: return "releaseStartupSlot"
            case .warnUpstreamFailure: return "warnUpstreamFailure"
            case .warnStartupRefusal: return "warnStartupRefusal"
            case .closeConnection(let reset): return reset ? "reset" : "close"
            case .closeLateUpstream: return "closeLateUpstream"
            }
        }
    }

    private func event(_ record: LogRecord) -> String {
        let object = try? JSONSerialization.jsonObject(with: Data(record.line.utf8)) as? [String: Any]
        let name = object?["event"] as? String ?? "?"
        return (object?["reason"] as? String).map { "\(name)(\($0))" } ?? name
    }

    private func fatalCode(_ bytes: ByteBuffer) -> String? {
        var bytes = bytes
        var decoder = PGBackendDecoder()
        guard case .errorResponse(let fields) = try? decoder.next(from: &bytes) else { return nil }
        return fields.severity == "FATAL" ? fields.sqlState : nil
    }

    private func bytes(_ count: Int) -> ByteBuffer { ByteBuffer(repeating: 0x61, count: count) }

    private let startup = PGEncoding.bytes(
        .startup(protocolVersion: PGStartupCode.protocol3, parameters: [.init(name: "user", value: "u")]))

    /// A raw connection, upstream connected, with these toxics.
    private func connected(_ toxics: [Toxic] = []) -> State {
        var state = machine()
        let opened = text(state.clientActive(nowNanos: start, clientAddress: "127.0.0.1:1", toxics: snapshot(toxics), using: &random))
        XCTAssertEqual(Array(opened.suffix(2)), ["log connect", "connectUpstream"])
        XCTAssertEqual(text(state.upstreamConnected(nowNanos: start)), [])
        return state
    }

    // MARK: forwarding

    func testRawForwardsAtOnceAndHoldsEarlyBytesUntilUpstreamConnects() {
        var state = machine()
        XCTAssertEqual(
            text(state.clientActive(nowNanos: start, clientAddress: nil, toxics: snapshot([]), using: &random)),
            ["log connect", "connectUpstream"])
        // Before the upstream connection exists the bytes wait in the queue.
        XCTAssertEqual(text(state.received(bytes(5), from: .client, nowNanos: start, toxics: snapshot([]), using: &random)), [])
        XCTAssertEqual(text(state.upstreamConnected(nowNanos: start + ms)), ["write server 5", "flush server"])
        // Then the fast path: written at once, flushed at the end of the read burst.
        XCTAssertEqual(
            text(state.received(bytes(3), from: .client, nowNanos: start + 2 * ms, toxics: snapshot([]), using: &random)),
            ["write server 3"])
        XCTAssertEqual(text(state.readComplete(.client)), ["flush server"])
        XCTAssertEqual(text(state.readComplete(.client)), [])
        XCTAssertEqual(
            text(state.received(bytes(4), from: .server, nowNanos: start + 3 * ms, toxics: snapshot([]), using: &random)),
            ["write client 4"])
        XCTAssertEqual(state.bytes.up, 8)
        XCTAssertEqual(state.bytes.down, 4)
    }

    func testLatencyHoldsEachChunkUntilItsReleaseTimer() {
        let latency = Toxic(type: .latency, stream: .upstream, attributes: ["latency": 50])
        var state = connected([latency])
        XCTAssertEqual(
            text(state.received(bytes(10), from: .client, nowNanos: start, toxics: snapshot([latency]), using: &random)),
            ["schedule release(ProxyCore.StreamDirection.upstream) +50ms"])
        // A second chunk 1 ms later is not serialised behind the first: the timer stays.
        XCTAssertEqual(
            text(state.received(bytes(20), from: .client, nowNanos: start + ms, toxics: snapshot([latency]), using: &random)),
            [])
        XCTAssertEqual(
            text(state.timerFired(.release(.upstream), nowNanos: start + 50 * ms)),
            ["write server 10", "flush server", "schedule release(ProxyCore.StreamDirection.upstream) +51ms"])
        XCTAssertEqual(text(state.timerFired(.release(.upstream), nowNanos: start + 51 * ms)), ["write server 20", "flush server"])
        // A timer cancelled too late to stop its run is ignored.
        XCTAssertEqual(text(state.timerFired(.release(.upstream), nowNanos: start + 52 * ms)), [])
    }

    func testWaterMarksHoldReadsAndResumeThem() {
        let latency = Toxic(type: .latency, stream: .upstream, attributes: ["latency": 10])
        var state = connected([latency])
        XCTAssertTrue(state.readRequested(.client))
        var sent = 0
        while sent < State.highWater {
            _ = state.received(bytes(64 << 10), from: .client, nowNanos: start, toxics: snapshot([latency]), using: &random)
            sent += 64 << 10
        }
        XCTAssertFalse(state.readRequested(.client), "above the high water mark the client is not read")
        XCTAssertTrue(state.readRequested(.server), "the other direction is not held")
        let released = text(state.timerFired(.release(.upstream), nowNanos: start + 10 * ms))
        XCTAssertEqual(released.filter { $0.hasPrefix("write") }.count, 16)
        XCTAssertEqual(Array(released.suffix(2)), ["flush server", "read client"], "below the low water mark the read resumes")
        // The target's writability holds reads too.
        XCTAssertEqual(text(state.writabilityChanged(.server, isWritable: false)), [])
        XCTAssertFalse(state.readRequested(.client))
        XCTAssertEqual(text(state.writabilityChanged(.server, isWritable: true)), ["read client"])
        XCTAssertEqual(text(state.writabilityChanged(.server, isWritable: true)), [], "nothing held any more")
    }

    // MARK: half-close

    func testHalfCloseFromTheClientThenTheServer() {
        var state = connected()
        XCTAssertEqual(text(state.inputClosed(.client, nowNanos: start)), ["closeOutput server"])
        XCTAssertEqual(text(state.outputClosed(.server, succeeded: true)), [])
        XCTAssertEqual(
            text(state.received(bytes(6), from: .server, nowNanos: start, toxics: snapshot([]), using: &random)),
            ["write client 6"], "the other direction keeps flowing")
        XCTAssertEqual(text(state.inputClosed(.server, nowNanos: start)), ["flush client", "closeOutput client"])
        XCTAssertEqual(text(state.outputClosed(.client, succeeded: true)), ["close", "log close"])
        XCTAssertTrue(state.closed)
        XCTAssertEqual(text(state.inactive(.client, nowNanos: start)), [])
    }

    func testHalfCloseFromTheServerWaitsBehindDelayedBytes() {
        let latency = Toxic(type: .latency, stream: .downstream, attributes: ["latency": 20])
        var state = connected([latency])
        _ = state.received(bytes(8), from: .server, nowNanos: start, toxics: snapshot([latency]), using: &random)
        XCTAssertEqual(text(state.inputClosed(.server, nowNanos: start + ms)), [], "the FIN waits for the data's timer")
        XCTAssertEqual(
            text(state.timerFired(.release(.downstream), nowNanos: start + 21 * ms)),
            ["write client 8", "flush client", "closeOutput client"])
        XCTAssertEqual(text(state.outputClosed(.client, succeeded: true)), [])
        XCTAssertEqual(text(state.inputClosed(.client, nowNanos: start + 22 * ms)), ["closeOutput server"])
        XCTAssertEqual(text(state.outputClosed(.server, succeeded: true)), ["close", "log close"])
    }

    func testACleanlyClosedSideStillGetsItsQueuedBytesDelivered() {
        let latency = Toxic(type: .latency, stream: .downstream, attributes: ["latency": 20])
        var state = connected([latency])
        _ = state.received(bytes(8), from: .server, nowNanos: start, toxics: snapshot([latency]), using: &random)
        XCTAssertEqual(text(state.inactive(.server, nowNanos: start + ms)), [], "not closed: 8 bytes and a FIN to deliver")
        XCTAssertEqual(
            text(state.timerFired(.release(.downstream), nowNanos: start + 21 * ms)),
            ["write client 8", "flush client", "closeOutput client"])
        XCTAssertEqual(text(state.outputClosed(.client, succeeded: true)), ["close", "log close"])
    }

    func testAFailedHalfCloseOrSocketErrorClosesBoth() {
        var state = connected()
        _ = state.inputClosed(.client, nowNanos: start)
        XCTAssertEqual(text(state.outputClosed(.server, succeeded: false)), ["close", "log close(half-close failed)"])
        var other = connected()
        XCTAssertEqual(
            text(other.failed(.server, description: "connection reset by peer")),
            ["log socket_error", "close", "log close(server error)"])
        XCTAssertEqual(text(other.failed(.client, description: "again")), [])
        XCTAssertEqual(text(other.upstreamConnected(nowNanos: start)), ["closeLateUpstream"])
    }

    // MARK: toxics

    func testLimitDataPassesTheLimitThenClosesEverything() {
        let limit = Toxic(type: .limitData, stream: .upstream, attributes: ["bytes": 10])
        var state = connected([limit])
        XCTAssertEqual(
            text(state.received(bytes(6), from: .client, nowNanos: start, toxics: snapshot([limit]), using: &random)),
            ["write server 6"])
        XCTAssertEqual(
            text(state.received(bytes(6), from: .client, nowNanos: start, toxics: snapshot([limit]), using: &random)),
            ["write server 4", "flush server", "close", "log close(limit_data reached)"])
    }

    func testTimeoutAndResetToxicsArmTimersFromTheClientsArrival() {
        let toxics = [
            Toxic(type: .timeout, stream: .upstream, attributes: ["timeout": 300]),
            Toxic(type: .resetPeer, stream: .downstream, attributes: ["timeout": 100]),
        ]
        var state = machine()
        XCTAssertEqual(
            text(state.clientActive(nowNanos: start, clientAddress: nil, toxics: snapshot(toxics), using: &random)),
            [
                "schedule blackHoleClose(ProxyCore.StreamDirection.upstream) +300ms",
                "schedule reset(ProxyCore.StreamDirection.downstream) +100ms", "log connect", "connectUpstream",
            ])
        _ = state.upstreamConnected(nowNanos: start)
        XCTAssertEqual(
            text(state.received(bytes(5), from: .client, nowNanos: start, toxics: snapshot(toxics), using: &random)), [],
            "a black hole swallows the bytes")
        XCTAssertEqual(state.bytes.dropped, 5)
        XCTAssertEqual(text(state.timerFired(.reset(.downstream), nowNanos: start + 100 * ms)), ["reset", "log close(reset_peer toxic)"])
        XCTAssertEqual(text(state.timerFired(.blackHoleClose(.upstream), nowNanos: start + 300 * ms)), [])
    }

    func testChangedToxicsAreRolledAgainAndTheirTimersReplaced() {
        let reset = Toxic(type: .resetPeer, stream: .upstream, attributes: ["timeout": 100])
        var state = machine()
        _ = state.clientActive(nowNanos: start, clientAddress: nil, toxics: snapshot([reset]), using: &random)
        _ = state.upstreamConnected(nowNanos: start)
        XCTAssertEqual(
            text(state.received(bytes(1), from: .client, nowNanos: start, toxics: snapshot([], generation: 2), using: &random)),
            ["cancel reset(ProxyCore.StreamDirection.upstream)", "write server 1"])
    }

    func testConnectDelayDefersTheUpstreamConnect() {
        let toxics = [
            Toxic(type: .latency, stream: .upstream, attributes: ["latency": 30]),
            Toxic(type: .latency, stream: .downstream, attributes: ["latency": 20]),
            Toxic(type: .connectDelay, stream: .upstream),
        ]
        var state = machine()
        XCTAssertEqual(
            text(state.clientActive(nowNanos: start, clientAddress: nil, toxics: snapshot(toxics), using: &random)),
            ["log connect", "schedule connect +50ms"])
        XCTAssertEqual(text(state.timerFired(.connect, nowNanos: start + 50 * ms)), ["connectUpstream"])
    }

    // MARK: PostgreSQL startup

    /// A pg connection whose client holds a pending-startup slot.
    private func pgWaitingForStartup(timeout: Int64 = 10_000_000_000) -> State {
        var state = machine(.pg, startupTimeoutNanos: timeout)
        XCTAssertEqual(
            text(state.clientActive(nowNanos: start, clientAddress: nil, toxics: snapshot([]), using: &random)),
            ["log connect", "requestStartupSlot"], "no upstream connection before the startup packet")
        XCTAssertEqual(text(state.startupSlotAnswered(granted: true, nowNanos: start)), ["schedule startup +\(timeout / ms)ms"])
        return state
    }

    func testCompleteStartupPacketOpensTheUpstreamConnection() {
        var state = pgWaitingForStartup()
        let head = startup.getSlice(at: 0, length: 6)!
        let tail = startup.getSlice(at: 6, length: startup.readableBytes - 6)!
        XCTAssertEqual(text(state.received(head, from: .client, nowNanos: start, toxics: snapshot([]), using: &random)), [])
        XCTAssertEqual(
            text(state.received(tail, from: .client, nowNanos: start + ms, toxics: snapshot([]), using: &random)),
            ["log startup", "cancel startup", "releaseStartupSlot", "connectUpstream"])
        XCTAssertEqual(
            text(state.upstreamConnected(nowNanos: start + 2 * ms)),
            ["write server \(startup.readableBytes)", "flush server"])
        XCTAssertEqual(text(state.timerFired(.startup, nowNanos: start + 10_000 * ms)), [], "the startup timer was cancelled")
    }

    func testStartupTimeoutGetsAFatalReplyThenLingersBeforeClosing() {
        var state = pgWaitingForStartup(timeout: 5_000_000_000)
        _ = state.received(startup.getSlice(at: 0, length: 6)!, from: .client, nowNanos: start, toxics: snapshot([]), using: &random)
        XCTAssertEqual(
            text(state.timerFired(.startup, nowNanos: start + 5_000 * ms)), ["releaseStartupSlot", "sendFatal 08P01"])
        XCTAssertEqual(text(state.fatalReplySent(nowNanos: start + 5_000 * ms)), ["schedule linger +7000ms"])
        XCTAssertEqual(
            text(state.received(bytes(3), from: .client, nowNanos: start + 5_001 * ms, toxics: snapshot([]), using: &random)),
            [], "after a FATAL reply the client's input is ignored")
        XCTAssertEqual(text(state.timerFired(.linger, nowNanos: start + 7_000 * ms)), ["close", "log close(startup timeout)"])
    }

    func testFatalMessageNamesTheTimeoutAndTheFlag() {
        var state = pgWaitingForStartup(timeout: 1_500_000_000)
        guard case .sendFatal(var reply)? = state.timerFired(.startup, nowNanos: start + 1_500 * ms).last else {
            return XCTFail("no FATAL reply")
        }
        var decoder = PGBackendDecoder()
        guard case .errorResponse(let fields)? = try? decoder.next(from: &reply) else { return XCTFail("not an ErrorResponse") }
        XCTAssertEqual(fields.message, "vtp-proxy: incomplete startup packet after 1.50 s (--startup-timeout)")
    }

    func testUnreachableUpstreamGetsAFatalReplyInPostgresModeAndACloseInRawMode() {
        var state = pgWaitingForStartup()
        _ = state.received(startup, from: .client, nowNanos: start, toxics: snapshot([]), using: &random)
        XCTAssertEqual(
            text(state.upstreamFailed(reason: "connection refused", nowNanos: start)),
            ["warnUpstreamFailure", "log upstream_error", "sendFatal 08006"])
        XCTAssertEqual(
            text(state.inputClosed(.client, nowNanos: start + ms)), ["close", "log close(upstream unreachable)"],
            "a client that leaves during the linger is closed at once")
        var raw = machine()
        _ = raw.clientActive(nowNanos: start, clientAddress: nil, toxics: snapshot([]), using: &random)
        XCTAssertEqual(
            text(raw.upstreamFailed(reason: "connection refused", nowNanos: start)),
            ["warnUpstreamFailure", "log upstream_error", "close", "log close(upstream unreachable)"])
    }

    func testClientsBeyondThePendingStartupCapGetTooManyConnections() {
        var state = machine(.pg)
        _ = state.clientActive(nowNanos: start, clientAddress: nil, toxics: snapshot([]), using: &random)
        XCTAssertEqual(
            text(state.startupSlotAnswered(granted: false, nowNanos: start)), ["warnStartupRefusal", "schedule startup +2000ms"])
        XCTAssertEqual(
            text(state.received(startup, from: .client, nowNanos: start + ms, toxics: snapshot([]), using: &random)),
            ["log startup", "cancel startup", "sendFatal 53300"], "answered as PostgreSQL answers when full")
        var silent = machine(.pg)
        _ = silent.clientActive(nowNanos: start, clientAddress: nil, toxics: snapshot([]), using: &random)
        _ = silent.startupSlotAnswered(granted: false, nowNanos: start)
        XCTAssertEqual(
            text(silent.timerFired(.startup, nowNanos: start + 2_000 * ms)), ["close", "log close(too many pending startups)"])
    }

    func testAClientLeavingMidStartupFreesItsSlot() {
        var state = pgWaitingForStartup()
        XCTAssertEqual(
            text(state.inactive(.client, nowNanos: start + ms)),
            ["releaseStartupSlot", "close", "log close(client closed before completing its startup packet)"])
    }

    func testProtocolErrorClosesOnlyThisConnection() {
        var state = pgWaitingForStartup()
        var bad = ByteBuffer()
        bad.writeInteger(UInt32(1 << 30))  // a startup length far beyond the limit
        bad.writeInteger(UInt32(196_608))
        XCTAssertEqual(
            text(state.received(bad, from: .client, nowNanos: start, toxics: snapshot([]), using: &random)),
            ["log protocol_error", "releaseStartupSlot", "close", "log close(protocol error)"])
    }

    func testDisablingTheProxyClosesTheConnection() {
        var state = connected()
        XCTAssertEqual(text(state.disable()), ["close", "log close(proxy disabled)"])
        XCTAssertEqual(text(state.disable()), [])
    }
}
