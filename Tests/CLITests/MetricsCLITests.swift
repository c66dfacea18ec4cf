import Foundation
import TestSupport
import XCTest

/// `--metrics HOST:PORT`: a bad value is a usage error (64), a port in use one line and exit 2.
final class MetricsCLITests: XCTestCase {
    private let tools: [(String, [String])] = [
        ("vtp-receiver", ["--port", "0", "--stop-after-seconds", "5"]),
        ("vtp-sender", ["--port", "9", "--events", "1", "--connect-timeout", "1"]),
    ]

    func testABadValueNamesTheFlag() throws {
        for (tool, args) in tools {
            let (status, _, err) = try RunningProcess.run(try Tools.url(tool), args + ["--metrics", "9464"])
            XCTAssertEqual(status, 64, "\(tool): \(err)")
            XCTAssertTrue(err.contains("--metrics must be HOST:PORT, e.g. 127.0.0.1:9464"), "\(tool): \(err)")
        }
    }

    func testAPortInUseIsOneLineAndExitStatus2() throws {
        let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(holder) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(holder, $0, length) == 0 && getsockname(holder, $0, &length) == 0 }
        }
        XCTAssertTrue(bound && listen(holder, 1) == 0)
        let port = Int(UInt16(bigEndian: address.sin_port))
        for (tool, args) in tools {
            let (status, _, err) = try RunningProcess.run(try Tools.url(tool), args + ["--metrics", "127.0.0.1:\(port)"])
            XCTAssertEqual(status, 2, "\(tool): \(err)")
            XCTAssertEqual(err, "\(tool): cannot serve metrics on 127.0.0.1:\(port): address already in use\n")
        }
    }
}
