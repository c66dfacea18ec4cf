import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PGWire
import Protocol
import TestSupport
import XCTest

@testable import ProxyCore

/// The proxy over real loopback sockets (port 0 everywhere).
final class ProxyEndToEndTests: XCTestCase {
    private var group: MultiThreadedEventLoopGroup!
    private var echo: Channel!
    private var echoPort: Int { echo.localAddress!.port! }

    override func setUp() async throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        echo = try await startEchoServer(group: group)
    }

    override func tearDown() async throws {
        try? await echo.close()
        try? await group.shutdownGracefully()
    }

    private func startProxy(
        protocol: ProxyProtocol = .raw, toxics: [Toxic] = [], log: String? = nil, upstreamPort: Int? = nil,
        control: Bool = false, warn: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws -> ProxyRuntime {
        let spec = ProxySpec(
            name: "test", listen: HostPort(host: "127.0.0.1", port: 0),
            upstream: HostPort(host: "127.0.0.1", port: upstreamPort ?? echoPort), protocol: `protocol`, log: log,
            toxics: toxics)
        return try await ProxyRuntime.start(
            specs: [spec], control: control ? HostPort(host: "127.0.0.1", port: 0) : nil, threads: 2, warn: warn)
    }

    private func port(_ runtime: ProxyRuntime) -> Int { runtime.listeners[0].boundAddress!.port }

    /// Round trip of a small message through the proxy to the echo server, in seconds.
    private func roundTrips(port: Int, count: Int) async throws -> [Double] {
        let client = try await TestClient.connect(to: port, group: group)
        return try await client.channel.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            var times: [Double] = []
            for index in 0..<count {
                let start = DispatchTime.now().uptimeNanoseconds
                try await outbound.write(ByteBuffer(string: "ping \(index)"))
                let reply = try await readBytes(&iterator, count: "ping \(index)".utf8.count)
                XCTAssertEqual(String(buffer: reply), "ping \(index)")
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            return times
        }
    }

    func testRawEchoCarriesMegabytesWithBackPressureAndHalfClose() async throws {
        let runtime = try await startProxy()
        let proxyPort = port(runtime)
        let client = try await TestClient.connect(to: proxyPort, group: group)
        // 64 KiB blocks of a pattern that never lines up with the block size, each tagged with
        // its number: a lost, repeated or reordered piece shows.
        let block = (0..<(64 << 10) - 4).map { UInt8(truncatingIfNeeded: $0 % 251) }
        var payload = ByteBuffer()
        for index in 0..<64 {
            payload.writeInteger(UInt32(index))
            payload.writeBytes(block)
        }
        let size = payload.readableBytes
        let sent = payload
        let received = try await withTimeout(30) {
            try await client.channel.executeThenClose { inbound, outbound in
                try await withThrowingTaskGroup(of: ByteBuffer?.self) { tasks in
                    tasks.addTask {
                        var rest = sent
                        while rest.readableBytes > 0 {
                            try await outbound.write(rest.readSlice(length: min(64 << 10, rest.readableBytes))!)
                        }
                        outbound.finish()  // half-close: the echo still answers
                        return nil
                    }
                    tasks.addTask {
                        var all = ByteBuffer()
                        for try await var chunk in inbound { all.writeBuffer(&chunk) }  // ends at the proxied FIN
                        return all
                    }
                    var result = ByteBuffer()
                    for try await value in tasks { if let value { result = value } }
                    return result
                }
            }
        }
        XCTAssertEqual(received.readableBytes, size)
        XCTAssertTrue(received == sent, "every byte, in order")
        await runtime.shutdown()
    }

    func testLatencyInjectedEachWayIsAccurate() async throws {
        let runtime = try await startProxy(toxics: [
            Toxic(type: .latency, stream: .upstream, attributes: ["latency": 50]),
            Toxic(type: .latency, stream: .downstream, attributes: ["latency": 50]),
        ])
        let times = try await roundTrips(port: port(runtime), count: 8)
        // Never early (lower bound on every sample); the median within 15 ms of 100 ms.
        for time in times {
            XCTAssertGreaterThanOrEqual(time, 0.100, "\(times)")
        }
        XCTAssertLessThan(times.sorted()[times.count / 2], 0.115, "\(times)")
        await runtime.shutdown()
        let direct = try await startProxy()
        let baseline = try await roundTrips(port: port(direct), count: 8)
        XCTAssertLessThan(baseline.sorted()[4], 0.02, "\(baseline)")
        await direct.shutdown()
    }

    func testBandwidthLimit() async throws {
        // 200 KB/s downstream: 100 KB echoed back takes about half a second.
        let runtime = try await startProxy(toxics: [Toxic(type: .bandwidth, stream: .downstream, attributes: ["rate": 200])])
        let client = try await TestClient.connect(to: port(runtime), group: group)
        let elapsed = try await client.channel.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            let start = DispatchTime.now().uptimeNanoseconds
            try await outbound.write(ByteBuffer(repeating: 0x61, count: 100_000))
            let reply = try await readBytes(&iterator, count: 100_000)
            XCTAssertEqual(reply.readableBytes, 100_000)
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        XCTAssertGreaterThan(elapsed, 0.4)
        XCTAssertLessThan(elapsed, 2.0, "the limit is 200 KB/s, not far less")
        await runtime.shutdown()
    }

    func testConnectDelayAddsOneRoundTripToSetUp() async throws {
        let runtime = try await startProxy(toxics: [
            Toxic(type: .latency, stream: .upstream, attributes: ["latency": 40]),
            Toxic(type: .latency, stream: .downstream, attributes: ["latency": 40]),
            Toxic(type: .connectDelay, stream: .upstream),
        ])
        let times = try await roundTrips(port: port(runtime), count: 5)
        XCTAssertGreaterThanOrEqual(times[0], 0.160, "first exchange pays the set-up round trip: \(times)")
        XCTAssertTrue(times.dropFirst().allSatisfy { $0 >= 0.080 }, "\(times)")
        XCTAssertLessThan(times.dropFirst().sorted()[2], 0.150, "later ones do not (median): \(times)")
        await runtime.shutdown()
    }

    func testLimitDataClosesAfterThatManyBytes() async throws {
        let runtime = try await startProxy(toxics: [Toxic(type: .limitData, stream: .downstream, attributes: ["bytes": 1000])])
        let client = try await TestClient.connect(to: port(runtime), group: group)
        let received = try await withTimeout(10) {
            try await client.channel.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(repeating: 0x62, count: 5000))
                var all = ByteBuffer()
                do {
                    for try await var chunk in inbound { all.writeBuffer(&chunk) }
                } catch {}
                return all.readableBytes
            }
        }
        XCTAssertEqual(received, 1000)
        await runtime.shutdown()
    }

    func testTimeoutToxicIsABlackHoleThenCloses() async throws {
        let runtime = try await startProxy(toxics: [Toxic(type: .timeout, stream: .upstream, attributes: ["timeout": 300])])
        let client = try await TestClient.connect(to: port(runtime), group: group)
        let start = DispatchTime.now().uptimeNanoseconds
        let received = try await withTimeout(10) {
            try await client.channel.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "into the void"))
                var count = 0
                do {
                    for try await chunk in inbound { count += chunk.readableBytes }
                } catch {}
                return count
            }
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        XCTAssertEqual(received, 0, "nothing reached the echo server")
        XCTAssertGreaterThan(elapsed, 0.25)
        await runtime.shutdown()
    }

    func testResetPeerResetsTheClient() async throws {
        let runtime = try await startProxy(toxics: [Toxic(type: .resetPeer, stream: .downstream, attributes: ["timeout": 200])])
        let client = try await TestClient.connect(to: port(runtime), group: group)
        let start = DispatchTime.now().uptimeNanoseconds
        let outcome: String = try await withTimeout(10) {
            try await client.channel.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "hello"))
                do {
                    for try await _ in inbound {}
                    return "clean end of stream"
                } catch {
                    return "\(error)"
                }
            }
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        XCTAssertTrue(outcome.contains("reset") || outcome.contains("104"), "RST, not FIN: \(outcome)")
        XCTAssertGreaterThan(elapsed, 0.15)
        await runtime.shutdown()
    }

    func testSlicerDeliversEverythingInSmallDelayedPieces() async throws {
        // 2,000 bytes in ~20-byte slices 2 ms apart: ~100 slices, ≥ 0.15 s.
        let runtime = try await startProxy(toxics: [
            Toxic(type: .slicer, stream: .downstream, attributes: ["average_size": 20, "size_variation": 5, "delay": 2000])
        ])
        let client = try await TestClient.connect(to: port(runtime), group: group)
        let payload = ByteBuffer(bytes: (0..<2000).map { UInt8(truncatingIfNeeded: $0 % 253) })
        let (received, reads, elapsed) = try await client.channel.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            let start = DispatchTime.now().uptimeNanoseconds
            try await outbound.write(payload)
            var all = ByteBuffer()
            var reads = 0
            while all.readableBytes < 2000, var chunk = try await iterator.next() {
                reads += 1
                all.writeBuffer(&chunk)
            }
            return (all, reads, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        XCTAssertEqual(received, payload)
        XCTAssertGreaterThan(reads, 20, "arrived in many pieces")
        XCTAssertGreaterThan(elapsed, 0.15)
        await runtime.shutdown()
    }

    func testSlowCloseDelaysTheFIN() async throws {
        let runtime = try await startProxy(toxics: [Toxic(type: .slowClose, stream: .downstream, attributes: ["delay": 300])])
        let client = try await TestClient.connect(to: port(runtime), group: group)
        let (echoed, dataTime, endTime) = try await client.channel.executeThenClose { inbound, outbound in
            let start = DispatchTime.now().uptimeNanoseconds
            try await outbound.write(ByteBuffer(string: "bye"))
            outbound.finish()
            var all = ByteBuffer()
            var dataTime = 0.0
            for try await var chunk in inbound {
                all.writeBuffer(&chunk)
                dataTime = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            }
            return (String(buffer: all), dataTime, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        XCTAssertEqual(echoed, "bye")
        XCTAssertLessThan(dataTime, endTime - 0.1, "data is not delayed with the FIN")
        XCTAssertGreaterThan(endTime, 0.28, "the FIN is")
        await runtime.shutdown()
    }

    func testControlEndpointChangesToxicsAndTakesTheProxyDown() async throws {
        let runtime = try await startProxy(control: true)
        let controlPort = runtime.control!.boundPort!
        let proxyPort = port(runtime)

        var (status, body) = try await httpRequest(port: controlPort, method: "GET", path: "/proxies", group: group)
        XCTAssertEqual(status, 200)
        XCTAssertTrue(body.contains("\"test\""), body)

        (status, body) = try await httpRequest(
            port: controlPort, method: "POST", path: "/proxies/test/toxics",
            body: #"{"name":"lag","type":"latency","stream":"upstream","attributes":{"latency":80}}"#, group: group)
        XCTAssertEqual(status, 201, body)
        var times = try await roundTrips(port: proxyPort, count: 2)
        XCTAssertGreaterThanOrEqual(times.min()!, 0.080, "\(times)")

        (status, body) = try await httpRequest(
            port: controlPort, method: "POST", path: "/proxies/test/toxics/lag", body: #"{"attributes":{"latency":5}}"#,
            group: group)
        XCTAssertEqual(status, 200, body)
        XCTAssertTrue(body.contains("\"latency\" : 5"), body)

        (status, body) = try await httpRequest(
            port: controlPort, method: "POST", path: "/proxies/test/toxics",
            body: #"{"type":"latency","attributes":{"latency":-3}}"#, group: group)
        XCTAssertEqual(status, 400)
        XCTAssertTrue(body.contains("must be a finite number"), body)

        (status, _) = try await httpRequest(port: controlPort, method: "DELETE", path: "/proxies/test/toxics/lag", group: group)
        XCTAssertEqual(status, 204)
        times = try await roundTrips(port: proxyPort, count: 2)
        XCTAssertLessThan(times.min()!, 0.03, "\(times)")

        (status, body) = try await httpRequest(
            port: controlPort, method: "POST", path: "/proxies/test", body: #"{"enabled":false}"#, group: group)
        XCTAssertEqual(status, 200, body)
        do {
            _ = try await TestClient.connect(to: proxyPort, group: group)
            XCTFail("a disabled proxy refuses connections")
        } catch {}
        (status, _) = try await httpRequest(port: controlPort, method: "POST", path: "/reset", group: group)
        XCTAssertEqual(status, 204)
        times = try await roundTrips(port: proxyPort, count: 1)
        XCTAssertEqual(times.count, 1, "up again on the same port")

        (status, _) = try await httpRequest(port: controlPort, method: "GET", path: "/proxies/nope", group: group)
        XCTAssertEqual(status, 404)
        await runtime.shutdown()
    }

    func testPortInUseIsAClearError() async throws {
        do {
            let runtime = try await startProxy(upstreamPort: echoPort)
            let spec = ProxySpec(
                name: "second", listen: HostPort(host: "127.0.0.1", port: echoPort),
                upstream: HostPort(host: "127.0.0.1", port: 1), protocol: .raw)
            do {
                _ = try await ProxyRuntime.start(specs: [spec], control: nil, threads: 1)
                XCTFail("binding a used port must fail")
            } catch let error as ProxyError {
                XCTAssertEqual("\(error)", "cannot listen on 127.0.0.1:\(echoPort): address already in use")
            }
            await runtime.shutdown()
        }
    }

    func testUnreachableUpstreamGetsAPostgresErrorAndAWarning() async throws {
        let closed = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let deadPort = closed.localAddress!.port!
        try await closed.close()
        let warnings = NIOLockedValueBox<[String]>([])
        let runtime = try await startProxy(protocol: .pg, upstreamPort: deadPort) { message in
            warnings.withLockedValue { $0.append(message) }
        }
        let client = try await TestClient.connect(to: port(runtime), group: group)
        let reply = try await withTimeout(10) {
            try await client.channel.executeThenClose { inbound, outbound in
                try await outbound.write(
                    PGEncoding.bytes(.startup(protocolVersion: PGStartupCode.protocol3, parameters: [.init(name: "user", value: "x")])))
                var all = ByteBuffer()
                for try await var chunk in inbound { all.writeBuffer(&chunk) }
                return all
            }
        }
        var decoder = PGBackendDecoder()
        var bytes = reply
        guard case .errorResponse(let fields) = try decoder.next(from: &bytes) else { return XCTFail("no ErrorResponse") }
        XCTAssertEqual(fields.sqlState, "08006")
        XCTAssertEqual(fields.message, "vtp-proxy: upstream 127.0.0.1:\(deadPort) unreachable: connection refused")
        XCTAssertEqual(warnings.withLockedValue { $0 }.count, 1)
        XCTAssertTrue(warnings.withLockedValue { $0 }[0].contains("unreachable: connection refused"))
        await runtime.shutdown()
    }

    func testMalformedStreamClosesThatConnectionOnly() async throws {
        let log = temporaryPath("malformed.jsonl")
        try? FileManager.default.removeItem(atPath: log)
        // The echo server plays the PostgreSQL server: it returns what the client sent.
        let runtime = try await startProxy(protocol: .pg, log: log)
        let proxyPort = port(runtime)
        let startup = PGEncoding.bytes(.startup(protocolVersion: PGStartupCode.protocol3, parameters: [.init(name: "user", value: "x")]))

        let good = try await TestClient.connect(to: proxyPort, group: group)
        let bad = try await TestClient.connect(to: proxyPort, group: group)
        try await bad.channel.executeThenClose { inbound, outbound in
            var message = startup
            message.writeBytes([UInt8(ascii: "Q"), 0xFF, 0xFF, 0xFF, 0xFF])  // negative length
            try await outbound.write(message)
            var count = 0
            do {
                for try await chunk in inbound { count += chunk.readableBytes }
            } catch {}
            XCTAssertLessThanOrEqual(count, startup.readableBytes, "closed after the malformed message")
        }
        try await good.channel.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            var message = startup
            PGEncoding.write(.query("SELECT 1"), into: &message)
            let expected = message
            try await outbound.write(message)
            let echoed = try await readBytes(&iterator, count: expected.readableBytes)
            XCTAssertEqual(echoed, expected, "the other connection carries on")
        }
        await runtime.shutdown()
        let events = logEvents(log)
        XCTAssertEqual(events.filter { $0["event"] as? String == "protocol_error" }.count, 1)
        XCTAssertEqual(events.filter { $0["event"] as? String == "query" }.count, 1)
        XCTAssertTrue(events.allSatisfy { $0["ts"] is String && $0["conn"] is Int })
    }

    func testMalformedVTPFrameClosesThatConnectionOnly() async throws {
        let log = temporaryPath("vtp-malformed.jsonl")
        try? FileManager.default.removeItem(atPath: log)
        let runtime = try await startProxy(protocol: .vtp, log: log)
        let proxyPort = port(runtime)
        let good = try await TestClient.connect(to: proxyPort, group: group)
        let bad = try await TestClient.connect(to: proxyPort, group: group)
        let badReceived = try await withTimeout(10) {
            try await bad.channel.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(bytes: [0x7F, 0xFF, 0xFF, 0xFF, 0x3C, 0x3F]))  // 2 GiB frame
                var count = 0
                do {
                    for try await chunk in inbound { count += chunk.readableBytes }
                } catch {}
                return count
            }
        }
        XCTAssertEqual(badReceived, 0, "closed, nothing forwarded")
        try await good.channel.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            let frame = VTPFraming.frame(TransportMessage.iamalive(localIVO: "ivo://test/x").xml)
            try await outbound.write(frame)
            let echoed = try await readBytes(&iterator, count: frame.readableBytes)
            XCTAssertEqual(echoed, frame, "the other connection carries on")
        }
        await runtime.shutdown()
        let events = logEvents(log)
        XCTAssertEqual(events.filter { $0["event"] as? String == "protocol_error" }.count, 1)
        XCTAssertEqual(events.filter { $0["event"] as? String == "iamalive" }.count, 2, "logged going up and coming back")
    }

    func testPlaintextBehindSSLRequestIsRefusedOverTheWire() async throws {
        let runtime = try await startProxy(protocol: .pg)
        let client = try await TestClient.connect(to: port(runtime), group: group)
        let received = try await withTimeout(10) {
            try await client.channel.executeThenClose { inbound, outbound in
                var message = PGEncoding.bytes(.sslRequest)
                PGEncoding.write(.startup(protocolVersion: PGStartupCode.protocol3, parameters: []), into: &message)
                try await outbound.write(message)
                var all = ByteBuffer()
                do {
                    for try await var chunk in inbound { all.writeBuffer(&chunk) }
                } catch {}
                return all.readableBytes
            }
        }
        XCTAssertEqual(received, 0, "disconnected without an answer")
        await runtime.shutdown()
    }
}
