import CommandLineKit
import XCTest

final class HostAndPortTests: XCTestCase {
    func testHostPortFormsAndTheirErrors() throws {
        XCTAssertEqual(try HostAndPort.parse("127.0.0.1:8099", flag: "--subscribe"), HostAndPort(host: "127.0.0.1", port: 8099))
        XCTAssertEqual(try HostAndPort.parse("broker.test:1", flag: "--subscribe").host, "broker.test")
        let v6 = try HostAndPort.parse("[::1]:8099", flag: "--subscribe")
        XCTAssertEqual(v6, HostAndPort(host: "::1", port: 8099))
        XCTAssertEqual(v6.description, "[::1]:8099")
        XCTAssertEqual(try HostAndPort.parse("0.0.0.0:0", flag: "--broadcast", ports: 0...65535).port, 0)
        for bad in ["8099", "host:", ":8099", "host:0", "host:65536", "host:-1", "::1:8099", "[::1:8099", "host:80x"] {
            XCTAssertThrowsError(try HostAndPort.parse(bad, flag: "--subscribe"), bad) { error in
                XCTAssertEqual(
                    "\(error)",
                    "--subscribe must be HOST:PORT with a port from 1 to 65535, e.g. 127.0.0.1:8099 or [::1]:8099 (got \(bad))")
            }
        }
    }
}
