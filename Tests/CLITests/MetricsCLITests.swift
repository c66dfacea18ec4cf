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
        let holder = try XCTUnwrap(ListeningSocket())
        defer { holder.close() }
        let port = holder.port
        for (tool, args) in tools {
            let (status, _, err) = try RunningProcess.run(try Tools.url(tool), args + ["--metrics", "127.0.0.1:\(port)"])
            XCTAssertEqual(status, 2, "\(tool): \(err)")
            XCTAssertEqual(err, "\(tool): cannot serve metrics on 127.0.0.1:\(port): address already in use\n")
        }
    }
}
