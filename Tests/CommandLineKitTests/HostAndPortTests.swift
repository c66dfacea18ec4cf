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

final class HostAndPortSplitTests: XCTestCase {
    /// The splitter every address flag shares: the shapes it accepts and the ones it refuses.
    func testSplitShapes() {
        let accepted: [(String, String, String)] = [
            ("127.0.0.1:8099", "127.0.0.1", "8099"), ("[::1]:0", "::1", "0"), (":9464", "", "9464"),
            ("host:", "host", ""), ("h:80x", "h", "80x"),
        ]
        for (text, host, port) in accepted {
            let split = HostAndPort.split(text)
            XCTAssertEqual(split?.host, host, text)
            XCTAssertEqual(split.map { String($0.port) }, port, text)
        }
        for text in ["", "8099", "::1:8099", "[::1:8099", "[::1]8099", "a b:1", "[::1"] {
            XCTAssertNil(HostAndPort.split(text), text)
        }
    }

    func testPortNumbersAreDigitsInRange() {
        XCTAssertEqual(HostAndPort.portNumber("0"), 0)
        XCTAssertEqual(HostAndPort.portNumber("65535"), 65535)
        for text in ["", "65536", "-1", "+80", " 80", "9x", "99999999999999999999"] {
            XCTAssertNil(HostAndPort.portNumber(Substring(text)), text)
        }
    }
}
