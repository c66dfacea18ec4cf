import Foundation
import NIOCore
import NIOPosix
import TestSupport
import XCTest

@testable import ProxyCore

/// The control endpoint refuses what would break the proxy, and says why.
final class ControlEndpointTests: XCTestCase {
    private var group: MultiThreadedEventLoopGroup!
    private var echo: Channel!
    private var runtime: ProxyRuntime!

    override func setUp() async throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        echo = try await startEchoServer(group: group)
        let spec = ProxySpec(
            name: "test", listen: HostPort(host: "127.0.0.1", port: 0),
            upstream: HostPort(host: "127.0.0.1", port: echo.localAddress!.port!), protocol: .raw)
        runtime = try await ProxyRuntime.start(specs: [spec], control: HostPort(host: "127.0.0.1", port: 0), threads: 2)
    }

    override func tearDown() async throws {
        await runtime?.shutdown()
        try? await echo.close()
        try? await group.shutdownGracefully()
    }

    private var controlPort: Int { runtime.control!.boundPort! }

    /// One echo through the proxy on a fresh connection (a toxic's plan is made per connection).
    private func echoThroughProxy() async throws -> String {
        let client = try await TestClient.connect(to: runtime.listeners[0].boundAddress!.port, group: group)
        return try await withTimeout(10) {
            try await client.channel.executeThenClose { inbound, outbound in
                var iterator = inbound.makeAsyncIterator()
                try await outbound.write(ByteBuffer(string: "still here"))
                return String(buffer: try await readBytes(&iterator, count: 10))
            }
        }
    }

    func testOutOfRangeToxicAttributesAre400AndTheProxyKeepsForwarding() async throws {
        // Each of these was answered 201 Created; the next connection then trapped converting
        // the value to Int64 nanoseconds or bytes, taking the whole proxy down.
        let bodies: [(body: String, attribute: String)] = [
            (#"{"type":"latency","attributes":{"latency":1e18}}"#, "latency"),
            (#"{"type":"latency","attributes":{"latency":1,"jitter":1e18}}"#, "jitter"),
            (#"{"type":"slow_close","attributes":{"delay":1e308}}"#, "delay"),
            (#"{"type":"timeout","attributes":{"timeout":1e308}}"#, "timeout"),
            (#"{"type":"reset_peer","attributes":{"timeout":1e308}}"#, "timeout"),
            (#"{"type":"stall","attributes":{"probability":0.5,"duration":1e308}}"#, "duration"),
            (#"{"type":"connect_delay","stream":"upstream","attributes":{"delay":1e308}}"#, "delay"),
            (#"{"type":"slicer","attributes":{"average_size":8,"delay":1e300}}"#, "delay"),
            (#"{"type":"slicer","attributes":{"average_size":1e300}}"#, "average_size"),
            (#"{"type":"limit_data","attributes":{"bytes":1e308}}"#, "bytes"),
            (#"{"type":"bandwidth","attributes":{"rate":1e308}}"#, "rate"),
            (#"{"type":"bandwidth","attributes":{"rate":1e-300}}"#, "rate"),
            (#"{"type":"stall","attributes":{"probability":1.5}}"#, "probability"),
        ]
        for (body, attribute) in bodies {
            let (status, reply) = try await httpRequest(
                port: controlPort, method: "POST", path: "/proxies/test/toxics", body: body, group: group)
            XCTAssertEqual(status, 400, "\(body) → \(reply)")
            XCTAssertTrue(reply.contains("attribute \\\"\(attribute)\\\" must be a finite number in "), reply)
            XCTAssertTrue(runtime.listeners[0].toxics.isEmpty, "nothing added by \(body)")
            let echoed = try await echoThroughProxy()
            XCTAssertEqual(echoed, "still here", "after \(body)")
        }

        // An update is checked the same way and leaves the toxic as it was.
        var (status, reply) = try await httpRequest(
            port: controlPort, method: "POST", path: "/proxies/test/toxics",
            body: #"{"name":"lag","type":"latency","attributes":{"latency":1}}"#, group: group)
        XCTAssertEqual(status, 201, reply)
        (status, reply) = try await httpRequest(
            port: controlPort, method: "POST", path: "/proxies/test/toxics/lag", body: #"{"attributes":{"latency":1e18}}"#,
            group: group)
        XCTAssertEqual(status, 400, reply)
        XCTAssertTrue(reply.contains("0…3600000 ms"), reply)
        XCTAssertEqual(runtime.listeners[0].toxics.first?.attributes["latency"], 1)
        let echoed = try await echoThroughProxy()
        XCTAssertEqual(echoed, "still here")
    }

    func testErrorResponseClosesTheConnection() async throws {
        // A keep-alive request (no "Connection: close") with a body that is not JSON.
        let client = try await TestClient.connect(to: controlPort, group: group)
        let response = try await withTimeout(10) {
            try await client.channel.executeThenClose { inbound, outbound in
                let body = "{not json"
                try await outbound.write(
                    ByteBuffer(
                        string: "POST /proxies/test/toxics HTTP/1.1\r\nHost: localhost\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"))
                var text = ""
                for try await chunk in inbound { text += String(buffer: chunk) }  // ends only if the server closes
                return text
            }
        }
        XCTAssertTrue(response.hasPrefix("HTTP/1.1 400"), response)
        XCTAssertTrue(response.lowercased().contains("connection: close"), response)
        XCTAssertTrue(response.contains("invalid JSON body"), response)

        // A good request on a keep-alive connection is still answered and the connection kept.
        let keptAlive = try await TestClient.connect(to: controlPort, group: group)
        let stillOpen = try await keptAlive.channel.executeThenClose { inbound, outbound -> [String] in
            var iterator = inbound.makeAsyncIterator()
            var statuses: [String] = []
            for path in ["/proxies", "/proxies/test"] {
                try await outbound.write(ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n"))
                // One whole response: headers, then Content-Length bytes of body.
                var text = ""
                while true {
                    if let end = text.range(of: "\r\n\r\n"),
                        let length = text[..<end.lowerBound].split(separator: "\r\n")
                            .first(where: { $0.lowercased().hasPrefix("content-length:") })
                            .flatMap({ Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) }),
                        text[end.upperBound...].utf8.count >= length
                    { break }
                    guard let chunk = try await iterator.next() else { return [] }
                    text += String(buffer: chunk)
                }
                statuses.append(String(text.prefix(12)))
            }
            return statuses
        }
        XCTAssertEqual(stillOpen, ["HTTP/1.1 200", "HTTP/1.1 200"], "two answers on one connection")
    }

    func testOversizedBodyIs413NamingTheLimit() async throws {
        // Valid JSON of 10 MB: refused for its size, not called invalid.
        let padding = String(repeating: "x", count: 10_000_000)
        let body = #"{"name":"big","type":"latency","attributes":{"latency":1},"padding":""# + padding + #""}"#
        let (port, group) = (controlPort, group!)
        let (status, reply) = try await withTimeout(30) {
            try await httpRequest(port: port, method: "POST", path: "/proxies/test/toxics", body: body, group: group)
        }
        XCTAssertEqual(status, 413, reply)
        XCTAssertTrue(reply.contains("exceeds the limit of 1048576 bytes"), reply)
        XCTAssertFalse(reply.contains("JSON"), reply)
        XCTAssertTrue(runtime.listeners[0].toxics.isEmpty)

        // Just under the limit is read whole.
        let fits = #"{"name":"fits","type":"latency","attributes":{"latency":1},"padding":""#
            + String(repeating: "y", count: 1_000_000) + #""}"#
        let (okStatus, okReply) = try await httpRequest(
            port: controlPort, method: "POST", path: "/proxies/test/toxics", body: fits, group: group)
        XCTAssertEqual(okStatus, 201, okReply)
    }
}
