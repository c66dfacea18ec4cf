import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PGWire
import TestSupport
import XCTest

@testable import ProxyCore

/// An upstream that counts the connections it accepts and the bytes it receives, and echoes.
final class CountingUpstream: Sendable {
    let accepted = NIOLockedValueBox(0)
    let receivedBytes = NIOLockedValueBox(0)
    let channel: Channel

    private final class Counter: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let upstream: NIOLockedValueBox<Int>
        init(_ received: NIOLockedValueBox<Int>) { upstream = received }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let count = unwrapInboundIn(data).readableBytes
            upstream.withLockedValue { $0 += count }
            context.fireChannelRead(data)
        }
    }

    init(group: EventLoopGroup) async throws {
        let accepted = accepted
        let received = receivedBytes
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                accepted.withLockedValue { $0 += 1 }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Counter(received))
                    try channel.pipeline.syncOperations.addHandler(EchoHandler())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    var port: Int { channel.localAddress!.port! }
    var connections: Int { accepted.withLockedValue { $0 } }
    var bytes: Int { receivedBytes.withLockedValue { $0 } }
}

/// A client that sends some bytes and then only listens: what came back and when the proxy
/// closed it. Sendable: its state is a promise and a locked flag; the bytes are collected by
/// a handler confined to the channel's loop.
final class StalledClient: Sendable {
    let connectedAt = DispatchTime.now().uptimeNanoseconds
    let closed: EventLoopPromise<(bytes: ByteBuffer, atNanos: UInt64)>
    private let closedFlag = NIOLockedValueBox(false)
    var isClosed: Bool { closedFlag.withLockedValue { $0 } }

    init(eventLoop: EventLoop) { closed = eventLoop.makePromise() }

    private final class Collector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        private var received = ByteBuffer()
        private let client: StalledClient
        init(_ client: StalledClient) { self.client = client }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            received.writeBuffer(&bytes)
        }

        func channelInactive(context: ChannelHandlerContext) {
            client.closedFlag.withLockedValue { $0 = true }
            client.closed.succeed((received, DispatchTime.now().uptimeNanoseconds))
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    }

    static func connect(port: Int, sending bytes: ByteBuffer, group: EventLoopGroup) async throws -> (Channel, StalledClient) {
        let eventLoop = group.next()
        let client = StalledClient(eventLoop: eventLoop)
        let channel = try await ClientBootstrap(group: eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(client)) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        // The proxy may already have refused and closed this client: a failed write is fine.
        try? await channel.writeAndFlush(bytes)
        return (channel, client)
    }
}

/// PostgreSQL mode opens the upstream connection only after a complete startup packet.
final class ProxyStartupTests: XCTestCase {
    private var group: MultiThreadedEventLoopGroup!
    private var upstream: CountingUpstream!

    override func setUp() async throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        upstream = try await CountingUpstream(group: group)
    }

    override func tearDown() async throws {
        try? await upstream.channel.close()
        try? await group.shutdownGracefully()
    }

    private let startup = PGEncoding.bytes(
        .startup(protocolVersion: PGStartupCode.protocol3, parameters: [.init(name: "user", value: "u")]))

    private func startProxy(
        protocol: ProxyProtocol = .pg, startupTimeoutNanos: Int64 = ProxySpec.defaultStartupTimeoutNanos,
        maxPendingStartups: Int = ProxySpec.defaultMaxPendingStartups,
        warn: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws -> ProxyRuntime {
        try await ProxyRuntime.start(
            specs: [
                ProxySpec(
                    name: "pg", listen: HostPort(host: "127.0.0.1", port: 0),
                    upstream: HostPort(host: "127.0.0.1", port: upstream.port), protocol: `protocol`,
                    startupTimeoutNanos: startupTimeoutNanos, maxPendingStartups: maxPendingStartups)
            ], control: nil, threads: 2, warn: warn)
    }

    /// Polls (bounded) until `condition` holds.
    private func waitUntil(_ seconds: Double = 20, _ condition: () -> Bool) async throws -> Bool {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
        while !condition() {
            if DispatchTime.now().uptimeNanoseconds > deadline { return false }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        return true
    }

    /// A complete startup and a query go through and come back from the echoing upstream.
    private func completeSession(port: Int) async throws -> Bool {
        let client = try await TestClient.connect(to: port, group: group)
        var message = startup
        PGEncoding.write(.query("SELECT 1"), into: &message)
        let sent = message
        return try await withTimeout(10) {
            try await client.channel.executeThenClose { inbound, outbound in
                var iterator = inbound.makeAsyncIterator()
                try await outbound.write(sent)
                return try await readBytes(&iterator, count: sent.readableBytes) == sent
            }
        }
    }

    private func fatalCode(_ bytes: ByteBuffer) -> String? {
        var bytes = bytes
        var decoder = PGBackendDecoder()
        guard case .errorResponse(let fields) = try? decoder.next(from: &bytes) else { return nil }
        return fields.severity == "FATAL" ? fields.sqlState : nil
    }

    func testStalledStartupsOpenNoUpstreamConnectionAndTimeOut() async throws {
        // Long enough that all 200 are connected and waiting before the first times out.
        let timeout: Int64 = 5_000_000_000
        let runtime = try await startProxy(startupTimeoutNanos: timeout)
        let listener = runtime.listeners[0]
        let port = listener.boundAddress!.port
        let partial = startup.getSlice(at: 0, length: 6)!  // 6 bytes of a startup packet, then silence
        var stalled: [(Channel, StalledClient)] = []
        for _ in 0..<200 { stalled.append(try await StalledClient.connect(port: port, sending: partial, group: group)) }
        let allPending = try await waitUntil { listener.pendingStartups == 200 }
        XCTAssertTrue(allPending, "pending: \(listener.pendingStartups)")
        // Give the proxy every chance to (wrongly) connect upstream for them.
        try await Task.sleep(nanoseconds: 300_000_000)
        XCTAssertEqual(upstream.connections, 0, "no upstream connection for an incomplete startup packet")

        let through = try await completeSession(port: port)
        XCTAssertTrue(through, "a complete startup packet still gets through")
        XCTAssertEqual(upstream.connections, 1)

        // After the startup timeout, every stalled client is told why and closed.
        var codes: [String?] = []
        for (_, client) in stalled {
            let (bytes, closedAt) = try await withTimeout(30) { try await client.closed.futureResult.get() }
            codes.append(fatalCode(bytes))
            let lived = Double(closedAt - client.connectedAt) / 1e9
            XCTAssertGreaterThan(lived, 4.5, "not closed before the 5 s startup timeout")
        }
        XCTAssertEqual(Set(codes), ["08P01"], "a FATAL protocol_violation ErrorResponse each")
        let drained = try await waitUntil { listener.pendingStartups == 0 }
        XCTAssertTrue(drained)
        XCTAssertEqual(upstream.connections, 1, "still only the complete session's")
        await runtime.shutdown()
    }

    func testClientsBeyondThePendingStartupCapAreRefused() async throws {
        let warnings = NIOLockedValueBox<[String]>([])
        let runtime = try await startProxy(startupTimeoutNanos: 60_000_000_000, maxPendingStartups: 20) { message in
            warnings.withLockedValue { $0.append(message) }
        }
        let listener = runtime.listeners[0]
        let port = listener.boundAddress!.port
        let partial = startup.getSlice(at: 0, length: 6)!
        var pending: [(Channel, StalledClient)] = []
        for _ in 0..<20 { pending.append(try await StalledClient.connect(port: port, sending: partial, group: group)) }
        let full = try await waitUntil { listener.pendingStartups == 20 }
        XCTAssertTrue(full, "pending: \(listener.pendingStartups)")

        // Beyond the cap: stalled clients are closed after a short grace, not after the timeout.
        var refused: [StalledClient] = []
        for _ in 0..<10 { refused.append(try await StalledClient.connect(port: port, sending: partial, group: group).1) }
        for client in refused { _ = try await withTimeout(20) { try await client.closed.futureResult.get() } }
        XCTAssertEqual(pending.filter { $0.1.isClosed }.count, 0, "the 20 within the cap wait for their startup")
        XCTAssertEqual(listener.pendingStartups, 20)

        // A complete startup beyond the cap is answered as PostgreSQL answers when full.
        let (_, complete) = try await StalledClient.connect(port: port, sending: startup, group: group)
        let (reply, _) = try await withTimeout(20) { try await complete.closed.futureResult.get() }
        XCTAssertEqual(fatalCode(reply), "53300", "too_many_connections")
        XCTAssertEqual(upstream.connections, 0)
        let warned = warnings.withLockedValue { $0 }
        XCTAssertFalse(warned.isEmpty)
        XCTAssertLessThan(warned.count, 11, "at most one warning per second, not one per client")
        XCTAssertTrue(warned.first?.contains("--max-pending-startups") ?? false, "\(warned)")

        // Clients that give up free their slots; then a complete startup gets through.
        for (channel, _) in pending { try? await channel.close() }
        let freed = try await waitUntil { listener.pendingStartups == 0 }
        XCTAssertTrue(freed, "pending: \(listener.pendingStartups)")
        XCTAssertEqual(upstream.connections, 0)
        let through = try await completeSession(port: port)
        XCTAssertTrue(through)
        XCTAssertEqual(upstream.connections, 1)
        await runtime.shutdown()
    }

    func testCancelRequestIsStillForwarded() async throws {
        let runtime = try await startProxy()
        let cancel = PGEncoding.bytes(.cancelRequest(processID: 7, secretKey: 9))
        let (channel, client) = try await StalledClient.connect(
            port: runtime.listeners[0].boundAddress!.port, sending: cancel, group: group)
        let forwarded = try await waitUntil { self.upstream.bytes == cancel.readableBytes }
        XCTAssertTrue(forwarded, "upstream got \(upstream.bytes) bytes")
        XCTAssertEqual(upstream.connections, 1)
        try await channel.close()
        _ = try await withTimeout(10) { try await client.closed.futureResult.get() }
        await runtime.shutdown()
    }

    func testRawModeStillConnectsUpstreamAtOnce() async throws {
        let runtime = try await startProxy(protocol: .raw)
        let (channel, _) = try await StalledClient.connect(
            port: runtime.listeners[0].boundAddress!.port, sending: ByteBuffer(), group: group)
        let connected = try await waitUntil { self.upstream.connections == 1 }
        XCTAssertTrue(connected, "raw mode connects before the client sends anything")
        try await channel.close()
        await runtime.shutdown()
    }
}
