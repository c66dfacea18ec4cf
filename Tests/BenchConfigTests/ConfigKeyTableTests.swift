import ArgumentParser
@testable import BenchConfig
import Foundation
import XCTest

/// The key table is the one declaration of every config key: loading, validation, JSON and the
/// command-line overrides of both tools all follow it.
final class ConfigKeyTableTests: XCTestCase {
    private func configFile(_ json: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("table-\(UUID()).json")
        try json.write(to: url, atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url.path
    }

    func testTheTableDrivesKeysAndJSONAndTheDefaultsRoundTrip() throws {
        let names = BenchConfiguration.table.map(\.name)
        XCTAssertEqual(Set(names).count, names.count, "each key declared once")
        XCTAssertEqual(BenchConfiguration.keys, names)
        let object = BenchConfiguration.defaults.jsonObject
        XCTAssertEqual(Set(object.keys), Set(names))
        let data = try JSONSerialization.data(withJSONObject: object)
        XCTAssertEqual(try BenchConfiguration.load(data: data), BenchConfiguration.defaults)
    }

    func testDurationsInTheConfigFileTakeUnitsOrBareSeconds() throws {
        let c = try BenchConfiguration.load(
            data: Data(#"{"period": "1500ms", "connect_timeout": "2s", "ack_timeout": "1m", "drain_timeout": 5, "idle_timeout": "0"}"#.utf8))
        XCTAssertEqual(c.period, 1.5)
        XCTAssertEqual(c.connectTimeout, 2)
        XCTAssertEqual(c.ackTimeout, 60)
        XCTAssertEqual(c.drainTimeout, 5)
        XCTAssertEqual(c.idleTimeout, 0)
        for bad in [#"{"period": "10x"}"#, #"{"period": "-1s"}"#, #"{"ack_timeout": "0ms"}"#, #"{"report_interval": "50ms"}"#] {
            XCTAssertThrowsError(try BenchConfiguration.load(data: Data(bad.utf8)), bad) { error in
                guard case .invalidValue(_, _, _, let expected)? = error as? ConfigError else { return XCTFail("\(error)") }
                XCTAssertTrue(expected.contains("500ms, 2s, 1m"), "the message shows units: \(expected)")
            }
        }
    }

    func testFlagsOverrideTheConfigFileThroughTheTable() throws {
        let config = try configFile(#"{"events": 100, "port": 9000}"#)
        let settings = try SenderSettings.parse([
            "--config", config, "--events", "5", "--period", "250ms", "--mode", "persistent", "--local-ivo",
            "ivo://flags.test/s", "--connect-timeout", "500ms", "--ack-timeout", "2", "--max-connect-scope", "setup",
        ])
        let c = try settings.resolve()
        XCTAssertEqual(c.events, 5)
        XCTAssertEqual(c.port, 9000, "from the file")
        XCTAssertEqual(c.period, 0.25)
        XCTAssertEqual(c.mode, .persistent)
        XCTAssertEqual(c.localIVO, "ivo://flags.test/s")
        XCTAssertEqual(c.connectTimeout, 0.5)
        XCTAssertEqual(c.ackTimeout, 2, "a bare number is seconds")
        XCTAssertEqual(c.maxConnectScope, .setup)
    }

    func testBadFlagValuesAreNamedByTheirFlag() throws {
        let config = try configFile("{}")
        let cases: [([String], String)] = [
            (["--events", "-5"], "--events must be at least 1 (got -5)"),
            (["--port", "-1"], "--port must be a port number from 0 to 65535 (got -1)"),
            (["--max-connect", "0"], "--max-connect must be an integer from 1 to 65535 (got 0)"),
            (["--mode", "batch"], "--mode must be per-event or persistent (got batch)"),
            (["--period", "-2s"], "--period must be a number of seconds from 0 to 604800 (one week)"),
            (["--connect-timeout", "0"], "--connect-timeout must be a positive number of seconds"),
            (["--report-interval", "10ms"], "0.1 (the minimum)"),
            (["--event-size", "2000000"], "--event-size must be a size in bytes from 0 to max_frame_size (1048576)"),
        ]
        for (args, message) in cases {
            let settings = try SenderSettings.parse(["--config", config] + args)
            XCTAssertThrowsError(try settings.resolve(), "\(args)") { error in
                guard case .invalidFlag? = error as? ConfigError else { return XCTFail("\(args): \(error)") }
                XCTAssertTrue("\(error)".hasPrefix(args[0]), "\(error)")
                XCTAssertTrue("\(error)".contains(message), "\(args): \(error)")
            }
        }
    }

    func testEveryKeyWithAFlagIsBoundAndEveryBoundFlagSetsItsKey() throws {
        // One valid, non-default value per flag-bearing key: a new key must be added here too.
        let samples = [
            "host": "10.0.0.9", "port": "9", "max_connect": "7", "max_connect_scope": "setup", "events": "7",
            "period": "1m", "mode": "persistent", "event_size": "700", "report_interval": "2s",
            "local_ivo": "ivo://sample.test/s", "connect_timeout": "3s", "ack_timeout": "4s", "drain_timeout": "5s",
            "receiver_ivo": "ivo://sample.test/r", "idle_timeout": "6s", "max_frame_size": "4096", "window": "32", "burst": "3", "burst_every": "2s",
            "iamalive_interval": "7s",
            "targets": "10.0.0.9:9", "failover": "all",
        ]
        let config = try configFile("{}")
        func check<Group: SettingsFlags>(_ group: Group.Type, _ tool: ConfigKey.Tool) throws {
            let withFlag = BenchConfiguration.table.filter { $0.help[tool] != nil }.map(\.name)
            XCTAssertEqual(Set(Group.bindings.map(\.key)), Set(withFlag), "\(tool): a flag per key with help")
            let help = Group.helpMessage(columns: 10_000)
            for key in BenchConfiguration.table where withFlag.contains(key.name) {
                XCTAssertTrue(help.contains(key.flag + " "), "\(tool) --help lists \(key.flag)")
                XCTAssertTrue(help.contains("[config: \(key.name)]"), "\(tool) --help names \(key.name)")
                let value = try XCTUnwrap(samples[key.name], key.name)
                let resolved = try Group.parse(["--config", config, key.flag, value]).resolve()
                XCTAssertNotEqual(
                    "\(key.jsonValue(resolved))", "\(key.jsonValue(.defaults))", "\(key.flag) \(value) sets \(key.name)")
            }
        }
        try check(SenderSettings.self, .sender)
        try check(ReceiverSettings.self, .receiver)
    }

    func testDurationRuleReadsTextWithTheKitsParser() throws {
        XCTAssertEqual(DurationRule.positive.seconds(from: "250ms"), 0.25)
        XCTAssertEqual(DurationRule.positive.seconds(from: "2"), 2)
        XCTAssertNil(DurationRule.positive.seconds(from: "0"), "positive excludes 0")
        XCTAssertNil(DurationRule.reportInterval.seconds(from: "50ms"))
        XCTAssertNil(DurationRule.nonNegative.seconds(from: "8d"))
        XCTAssertEqual(DurationRule.maximumSeconds, 604_800)
        XCTAssertThrowsError(try DurationRule.positive.seconds(flag: "--stop-after-seconds", "-3")) { error in
            XCTAssertTrue("\(error)".hasPrefix("--stop-after-seconds must be a positive number of seconds"), "\(error)")
        }
    }

    func testReceiverSettingsResolveInOneCall() throws {
        let config = try configFile(#"{"port": 9001}"#)
        let c = try ReceiverSettings.parse(
            ["--config", config, "--idle-timeout", "2m", "--report-interval", "500ms", "--receiver-ivo", "ivo://r.test/x"]
        ).configuration()
        XCTAssertEqual(c.port, 9001)
        XCTAssertEqual(c.idleTimeout, 120)
        XCTAssertEqual(c.reportInterval, 0.5)
        XCTAssertEqual(c.receiverIVO, "ivo://r.test/x")
        XCTAssertThrowsError(try ReceiverSettings.parse(["--config", config, "--port", "-1"]).configuration()) { error in
            XCTAssertTrue(error is ValidationError, "a usage error for ArgumentParser: \(error)")
        }
    }
}
