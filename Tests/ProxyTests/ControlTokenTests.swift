import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import TestSupport
import XCTest

@testable import ProxyCore

/// The control endpoint changes faults for everyone who passes: off loopback it needs a token,
/// with a token every request must carry it, and hostile HTTP is answered 400, never a crash.
final class ControlTokenTests: XCTestCase {
    func testTokenComparisonNeedsExactlyOneBearerWithTheWholeToken() throws {
        let token = try ControlToken("s3cret-TOKEN")
        XCTAssertTrue(token.accepts(authorization: ["Bearer s3cret-TOKEN"]))
        XCTAssertTrue(token.accepts(authorization: ["bearer s3cret-TOKEN"]), "the scheme is case-insensitive")
        XCTAssertTrue(token.accepts(authorization: ["Bearer   s3cret-TOKEN"]))
        for wrong in ["Bearer s3cret-TOKE", "Bearer s3cret-TOKENx", "Bearer s3cret-token", "Basic s3cret-TOKEN", "s3cret-TOKEN", "Bearer", "Bearer ", ""] {
            XCTAssertFalse(token.accepts(authorization: [wrong]), wrong)
        }
        XCTAssertFalse(token.accepts(authorization: []), "no header")
        XCTAssertFalse(token.accepts(authorization: ["Bearer s3cret-TOKEN", "Bearer s3cret-TOKEN"]), "two headers")
        XCTAssertTrue(ControlToken.constantTimeEquals(Array("abc".utf8), Array("abc".utf8)))
        XCTAssertFalse(ControlToken.constantTimeEquals(Array("abc".utf8), Array("abcd".utf8)))
        XCTAssertFalse(ControlToken.constantTimeEquals(Array("abc".utf8), []))
    }

    func testTokensAreCheckedWhenGiven() throws {
        for bad in ["", "has space", "tab\there", String(repeating: "x", count: 5000), "ünïcode"] {
            XCTAssertThrowsError(try ControlToken(bad), bad) { error in
                XCTAssertTrue("\(error)".hasPrefix("--control-token: "), "\(error)")
            }
        }
        let path = temporaryPath("token-\(UUID().uuidString)")
        try "  f00d-cafe \n# ignored\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(try ControlToken.load(path: path), try ControlToken("f00d-cafe"))
        try "\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ControlToken.load(path: path)) { XCTAssertTrue("\($0)".contains("must not be empty"), "\($0)") }
        XCTAssertThrowsError(try ControlToken.load(path: path + ".missing")) {
            XCTAssertTrue("\($0)".hasPrefix("--control-token-file: \(path).missing: "), "\($0)")
        }
    }

    func testLoopbackAddresses() {
        for host in ["127.0.0.1", "127.1.2.3", "::1", "localhost"] {
            XCTAssertTrue(HostPort(host: host, port: 1).isLoopback, host)
        }
        for host in ["0.0.0.0", "::", "10.0.0.1", "192.168.1.1", "example.org", "::2", "128.0.0.1", "::ffff:127.0.0.1"] {
            XCTAssertFalse(HostPort(host: host, port: 1).isLoopback, host)
        }
    }

    func testAControlEndpointOffLoopbackNeedsAToken() throws {
        var line = ProxyCommandLine(threads: 1)
        line.listen = "127.0.0.1:0"
        line.upstream = "127.0.0.1:1"
        line.control = "0.0.0.0:8474"
        XCTAssertThrowsError(try line.plan()) { error in
            XCTAssertTrue("\(error)".hasPrefix("--control: 0.0.0.0:8474 may be reachable from other hosts"), "\(error)")
            XCTAssertTrue("\(error)".contains("--control-token"), "\(error)")
        }
        line.controlToken = "abc"
        XCTAssertEqual(try line.plan().controlToken, try ControlToken("abc"))
        line.controlTokenFile = "/nonexistent"
        XCTAssertThrowsError(try line.plan()) { XCTAssertTrue("\($0)".contains("not both"), "\($0)") }
        line.controlToken = nil
        line.controlTokenFile = nil
        line.control = "127.0.0.1:8474"
        XCTAssertNil(try line.plan().controlToken, "loopback needs none")
        line.control = nil
        line.controlToken = "abc"
        XCTAssertThrowsError(try line.plan()) { XCTAssertTrue("\($0)".contains("needs a control endpoint"), "\($0)") }
    }

    // MARK: the handlers on one connection (no sockets)

    /// Writes `request` to a control connection's handlers (in the mode that routes nothing) and
    /// returns what they answered, and whether they closed the connection.
    private func exchange(_ request: String, token: ControlToken?) throws -> (text: String, closed: Bool) {
        let channel = EmbeddedChannel()
        try ControlServer.addHandlers(to: channel, token: token, listeners: nil)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        do {
            try channel.writeInbound(ByteBuffer(string: request))
        } catch {
            // A parse error is also fired down the pipeline after the 400 is written.
        }
        var text = ""
        while let chunk = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: chunk) }
        let closed = !channel.isActive
        _ = try? channel.finish()
        return (text, closed)
    }

    func testWithATokenRequestsWithoutItAre401() throws {
        let token = try ControlToken("fuzz-token")
        let missing = try exchange("GET /proxies HTTP/1.1\r\nHost: x\r\n\r\n", token: token)
        XCTAssertTrue(missing.text.hasPrefix("HTTP/1.1 401"), missing.text)
        XCTAssertTrue(missing.text.contains("WWW-Authenticate: Bearer"), missing.text)
        XCTAssertTrue(missing.text.contains("Authorization: Bearer TOKEN"), missing.text)
        XCTAssertTrue(missing.closed, "a refused connection is closed")
        let wrong = try exchange("GET /proxies HTTP/1.1\r\nAuthorization: Bearer fuzz-tokem\r\n\r\n", token: token)
        XCTAssertTrue(wrong.text.hasPrefix("HTTP/1.1 401"), wrong.text)
        // A body sent without the token is read and dropped, never decoded.
        let body = #"{"type":"latency","attributes":{"latency":1}}"#
        let withBody = try exchange(
            "POST /proxies/p/toxics HTTP/1.1\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)", token: token)
        XCTAssertTrue(withBody.text.hasPrefix("HTTP/1.1 401"), withBody.text)
        let good = try exchange("GET /proxies HTTP/1.1\r\nAuthorization: Bearer fuzz-token\r\n\r\n", token: token)
        XCTAssertTrue(good.text.hasPrefix("HTTP/1.1 204"), good.text)
        XCTAssertFalse(good.closed, "a good request keeps the connection")
        let none = try exchange("GET /proxies HTTP/1.1\r\n\r\n", token: nil)
        XCTAssertTrue(none.text.hasPrefix("HTTP/1.1 204"), "no token set, none asked: \(none.text)")
    }

    func testMalformedAndOversizedRequestsAre400() throws {
        let cases: [(String, String)] = [
            ("not http at all\r\n\r\n", "garbage"),
            ("GET /proxies HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", "negative length"),
            ("GET /proxies HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "two lengths"),
            ("GET /proxies HTTP/1.1\r\nX: " + String(repeating: "a", count: 200_000) + "\r\n\r\n", "200 KB header"),
            ("GET /" + String(repeating: "p", count: 200_000) + " HTTP/1.1\r\n\r\n", "200 KB path"),
            ("GET /proxies HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        ]
        for (request, what) in cases {
            let (text, closed) = try exchange(request, token: nil)
            XCTAssertTrue(text.hasPrefix("HTTP/1.1 400"), "\(what): \(text.prefix(200))")
            XCTAssertTrue(closed, "\(what): closed after the 400")
        }
    }

    func testARealEndpointWithATokenRefusesRequestsWithoutIt() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let echo = try await startEchoServer(group: group)
        let spec = ProxySpec(
            name: "test", listen: HostPort(host: "127.0.0.1", port: 0),
            upstream: HostPort(host: "127.0.0.1", port: echo.localAddress!.port!), protocol: .raw)
        let runtime = try await ProxyRuntime.start(
            specs: [spec], control: HostPort(host: "127.0.0.1", port: 0), controlToken: try ControlToken("t0k3n"), threads: 1)
        let port = runtime.control!.boundPort!
        func request(_ headers: String) async throws -> String {
            let client = try await TestClient.connect(to: port, group: group)
            return try await withTimeout(10) {
                try await client.channel.executeThenClose { inbound, outbound in
                    try await outbound.write(ByteBuffer(string: "GET /proxies HTTP/1.1\r\nConnection: close\r\n\(headers)\r\n"))
                    var text = ""
                    for try await chunk in inbound { text += String(buffer: chunk) }
                    return text
                }
            }
        }
        let refused = try await request("")
        XCTAssertTrue(refused.hasPrefix("HTTP/1.1 401"), refused)
        let accepted = try await request("Authorization: Bearer t0k3n\r\n")
        XCTAssertTrue(accepted.hasPrefix("HTTP/1.1 200"), accepted)
        XCTAssertTrue(accepted.contains("\"test\""), accepted)
        XCTAssertTrue(runtime.readyLines(control: HostPort(host: "127.0.0.1", port: 0)).last!.hasSuffix("(token required)"))
        await runtime.shutdown()
        try await echo.close()
        try await group.shutdownGracefully()
    }
}
