import Foundation
import LiveMetrics
import NIOCore
import NIOPosix
import TestSupport
import XCTest

@testable import ProxyCore

/// `vtp-proxy --metrics`: bytes each way, connections, per proxy.
final class ProxyMetricsTests: XCTestCase {
    func testBytesAndConnectionsAreCountedPerDirection() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let echo = try await startEchoServer(group: group)
        let spec = ProxySpec(
            name: "pg", listen: HostPort(host: "127.0.0.1", port: 0),
            upstream: HostPort(host: "127.0.0.1", port: echo.localAddress!.port!), protocol: .raw)
        let runtime = try await ProxyRuntime.start(specs: [spec], control: nil, threads: 2)
        let port = try XCTUnwrap(runtime.listeners[0].boundAddress?.port)
        let client = try await TestClient.connect(to: port, group: group)
        try await client.channel.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            try await outbound.write(ByteBuffer(string: String(repeating: "x", count: 1000)))
            _ = try await readBytes(&iterator, count: 1000)  // echoed: 1000 bytes each way
            let snapshot = try await runtime.metricsSnapshot().get()
            let proxy = MetricsSnapshot.Label("proxy", "pg")
            XCTAssertEqual(snapshot.counters[.init(.proxyBytes, labels: [proxy, .init("direction", "upstream")])], 1000)
            XCTAssertEqual(snapshot.counters[.init(.proxyBytes, labels: [proxy, .init("direction", "downstream")])], 1000)
            XCTAssertEqual(snapshot.counters[.init(.proxyConnections, labels: [proxy])], 1)
            XCTAssertEqual(snapshot.gauges[.init(.openConnections, labels: [proxy])], 1)
            XCTAssertEqual(snapshot.counters[.init(.errors, labels: [proxy])], 0)
        }
        await runtime.shutdown()
        try? await echo.close()
        try await group.shutdownGracefully()
    }
}
