import ArgumentParser
import BenchConfig
import Foundation
import XCTest

/// `targets` / `--target` and `failover` / `--failover`: several receivers, named as host:port.
final class TargetsConfigTests: XCTestCase {
    private func configFile(_ json: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("targets-\(UUID()).json")
        try json.write(to: url, atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url.path
    }

    func testTargetsParseHostPortAndBracketedIPv6() {
        XCTAssertEqual(SenderTarget(parsing: "127.0.0.1:8098"), SenderTarget(host: "127.0.0.1", port: 8098))
        XCTAssertEqual(SenderTarget(parsing: "broker.example.org:1"), SenderTarget(host: "broker.example.org", port: 1))
        XCTAssertEqual(SenderTarget(parsing: "[::1]:9000"), SenderTarget(host: "::1", port: 9000))
        XCTAssertEqual(SenderTarget(host: "::1", port: 9000).description, "[::1]:9000")
        for bad in ["127.0.0.1", "127.0.0.1:", ":8098", "host:0", "host:65536", "host:+80", "host:-1", "::1:80", "[]:80",
            "[::1:80", "a b:80", "host:8098x", "host:99999999999999999999"]
        {
            XCTAssertNil(SenderTarget(parsing: bad), bad)
        }
    }

    func testTheConfigFileListsTargetsAndTheFailoverMode() throws {
        let c = try BenchConfiguration.load(
            data: Data(#"{"targets": ["10.0.0.1:8098", "[::1]:9000"], "failover": "all"}"#.utf8))
        XCTAssertEqual(c.targets, [SenderTarget(host: "10.0.0.1", port: 8098), SenderTarget(host: "::1", port: 9000)])
        XCTAssertEqual(c.senderTargets, c.targets)
        XCTAssertEqual(c.failover, .all)
        XCTAssertEqual(c.jsonObject["targets"] as? [String], ["10.0.0.1:8098", "[::1]:9000"])
        XCTAssertThrowsError(try BenchConfiguration.load(data: Data(#"{"targets": ["10.0.0.1"]}"#.utf8))) { error in
            XCTAssertTrue("\(error)".contains("invalid value for \"targets\""), "\(error)")
            XCTAssertTrue("\(error)".contains("HOST:PORT"), "\(error)")
        }
        XCTAssertThrowsError(try BenchConfiguration.load(data: Data(#"{"failover": "random"}"#.utf8)))
    }

    func testWithoutTargetsHostAndPortAreTheOneTarget() throws {
        let c = try BenchConfiguration.load(data: Data(#"{"host": "10.0.0.5", "port": 9}"#.utf8))
        XCTAssertEqual(c.senderTargets, [SenderTarget(host: "10.0.0.5", port: 9)])
        XCTAssertEqual(BenchConfiguration.defaults.failover, .ordered)
    }

    func testRepeatedTargetFlagsReplaceTheFilesTargetsInOrder() throws {
        let config = try configFile(#"{"targets": ["10.0.0.1:1"]}"#)
        let c = try SenderSettings.parse([
            "--config", config, "--target", "127.0.0.1:9001", "--target", "127.0.0.1:9002,127.0.0.1:9003", "--failover",
            "all",
        ]).resolve()
        XCTAssertEqual(c.senderTargets.map(\.description), ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"])
        XCTAssertEqual(c.failover, .all)
    }

    func testHostAndPortFlagsReplaceTheFilesTargetsAndCannotBeMixedWithTarget() throws {
        let config = try configFile(#"{"targets": ["10.0.0.1:1", "10.0.0.2:2"]}"#)
        let c = try SenderSettings.parse(["--config", config, "--port", "9005"]).resolve()
        XCTAssertEqual(c.senderTargets, [SenderTarget(host: "127.0.0.1", port: 9005)], "--port means one target")
        XCTAssertThrowsError(
            try SenderSettings.parse(["--config", config, "--target", "10.0.0.3:3", "--host", "10.0.0.4"]).resolve()
        ) { error in
            XCTAssertEqual(
                "\(error)", "--target and --host cannot be combined: --host/--port name one target; give either --target or --host/--port")
        }
    }

    func testATargetThatIsNotHostPortIsNamedInOneLine() throws {
        XCTAssertThrowsError(try SenderSettings.parse(["--target", "127.0.0.1:9001", "--target", "localhost"])) { error in
            let message = SenderSettings.message(for: error)
            XCTAssertEqual(
                message,
                "--target must be HOST:PORT with a port from 1 to 65535, e.g. 127.0.0.1:8098 or [::1]:8098 (got \"localhost\")")
            XCTAssertEqual(SenderSettings.exitCode(for: error).rawValue, 64)
        }
    }
}
