import BenchConfig
import Foundation
import XCTest

final class ConfigTests: XCTestCase {
    private func load(_ json: String) throws -> BenchConfiguration {
        try BenchConfiguration.load(data: Data(json.utf8), source: "test.json")
    }

    func testShippedConfigJSONEqualsTheBuiltInDefaults() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let shipped = try BenchConfiguration.load(path: root.appendingPathComponent("config.json").path)
        XCTAssertEqual(shipped, BenchConfiguration.defaults)
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: root.appendingPathComponent("config.json"))) as! [String: Any]
        XCTAssertEqual(Set(object.keys), Set(BenchConfiguration.keys), "config.json documents every key")
    }

    func testValuesAreRead() throws {
        let c = try load(#"{"host":"10.0.0.2","port":9000,"max_connect":1,"events":5,"period":2.5,"mode":"persistent","max_connect_scope":"setup","event_size":200}"#)
        XCTAssertEqual(c.host, "10.0.0.2")
        XCTAssertEqual(c.port, 9000)
        XCTAssertEqual(c.maxConnect, 1)
        XCTAssertEqual(c.events, 5)
        XCTAssertEqual(c.period, 2.5)
        XCTAssertEqual(c.mode, .persistent)
        XCTAssertEqual(c.maxConnectScope, .setup)
        XCTAssertEqual(c.eventSize, 200)
        XCTAssertEqual(c.reportInterval, BenchConfiguration.defaults.reportInterval, "absent keys keep defaults")
    }

    func testUnknownKeyIsNamedWithASuggestion() {
        XCTAssertThrowsError(try load(#"{"max_conect": 3}"#)) { error in
            XCTAssertEqual(error as? ConfigError, .unknownKey(source: "test.json", key: "max_conect", suggestion: "max_connect"))
            XCTAssertTrue("\(error)".contains("max_conect"))
        }
        XCTAssertThrowsError(try load(#"{"MAX_CONNECT": 3}"#)) { error in
            XCTAssertEqual(error as? ConfigError, .unknownKey(source: "test.json", key: "MAX_CONNECT", suggestion: "max_connect"))
        }
    }

    func testInvalidValuesNameTheKey() {
        let cases: [(String, String)] = [
            (#"{"port": "eighty"}"#, "port"), (#"{"port": 70000}"#, "port"), (#"{"max_connect": 0}"#, "max_connect"),
            (#"{"max_connect": 1.5}"#, "max_connect"), (#"{"events": -1}"#, "events"), (#"{"period": -2}"#, "period"),
            (#"{"mode": "batch"}"#, "mode"), (#"{"event_size": true}"#, "event_size"),
            (#"{"local_ivo": "http://x"}"#, "local_ivo"), (#"{"local_ivo": "ivo://x#y"}"#, "local_ivo"),
            (#"{"report_interval": 0}"#, "report_interval"), (#"{"max_connect_scope": "all"}"#, "max_connect_scope"),
            (#"{"event_size": 2000000}"#, "event_size"), (#"{"host": null}"#, "host"),
        ]
        for (json, key) in cases {
            XCTAssertThrowsError(try load(json), json) { error in
                guard case .invalidValue(_, let named, _, _)? = error as? ConfigError else {
                    return XCTFail("\(json): \(error)")
                }
                XCTAssertEqual(named, key, json)
            }
        }
    }

    func testDurationsMustBeFiniteAndAtMostAWeek() throws {
        let keys = ["period", "report_interval", "connect_timeout", "ack_timeout", "idle_timeout", "drain_timeout"]
        for key in keys {
            for value in ["1e300", "604801", "-1"] {
                let json = "{\"\(key)\": \(value)}"
                XCTAssertThrowsError(try load(json), json) { error in
                    guard case .invalidValue(_, let named, _, let expected)? = error as? ConfigError else {
                        return XCTFail("\(json): \(error)")
                    }
                    XCTAssertEqual(named, key, json)
                    XCTAssertTrue(expected.contains("604800"), "\(json): the message names the maximum: \(expected)")
                }
            }
            XCTAssertNoThrow(try load("{\"\(key)\": 604800}"), "\(key): a week is allowed")
        }
        // Set directly (flags): NaN and infinity never reach a conversion.
        for value in [Double.nan, .infinity, 1e300] {
            var c = BenchConfiguration()
            c.ackTimeout = value
            XCTAssertThrowsError(try c.validate(), "\(value)")
        }
    }

    func testReportIntervalHasAMinimum() throws {
        XCTAssertThrowsError(try load(#"{"report_interval": 1e-9}"#)) { error in
            guard case .invalidValue(_, "report_interval", _, let expected)? = error as? ConfigError else {
                return XCTFail("\(error)")
            }
            XCTAssertTrue(expected.contains("0.1 (the minimum)"), expected)
        }
        XCTAssertEqual(try load(#"{"report_interval": 0.1}"#).reportInterval, 0.1)
    }

    func testSecondsToNanosecondsNeverTraps() {
        XCTAssertEqual(DurationRule.nanoseconds(1.5), 1_500_000_000)
        XCTAssertEqual(DurationRule.nanoseconds(0), 0)
        XCTAssertEqual(DurationRule.nanoseconds(-3), 0)
        XCTAssertEqual(DurationRule.nanoseconds(.nan), 0)
        XCTAssertEqual(DurationRule.nanoseconds(1e300), 1_000_000_000_000_000_000)
        XCTAssertEqual(DurationRule.nanoseconds(.infinity), 1_000_000_000_000_000_000)
    }

    func testMaxFrameSizeErrorsNameMaxFrameSize() {
        for json in [#"{"max_frame_size": 0}"#, #"{"max_frame_size": 0, "event_size": 10}"#] {
            XCTAssertThrowsError(try load(json), json) { error in
                guard case .invalidValue(_, let named, _, _)? = error as? ConfigError else { return XCTFail("\(error)") }
                XCTAssertEqual(named, "max_frame_size", json)
            }
        }
    }

    func testMaxConnectIsBoundedByTheLocalPortSpace() {
        XCTAssertThrowsError(try load(#"{"max_connect": 100000}"#)) { error in
            guard case .invalidValue(_, "max_connect", _, let expected)? = error as? ConfigError else { return XCTFail("\(error)") }
            XCTAssertTrue(expected.contains("65535"), expected)
        }
        XCTAssertEqual(try load(#"{"max_connect": 65535}"#).maxConnect, 65535)
    }

    func testDuplicateKeysAreRejectedByName() {
        let duplicates: [(String, String)] = [
            (#"{"port": 1, "port": 2}"#, "port"),
            (#"{"port": 8098, "events": 3, "po\u0072t": 8098}"#, "port"),  // the same key, escaped
            (#"{"host": "a\"},{", "events": [1, {"host": 2}], "host": "b"}"#, "host"),
            ("\u{FEFF}{ \"mode\" : \"persistent\" ,\n\"mode\":\"per-event\" }", "mode"),
        ]
        for (json, key) in duplicates {
            XCTAssertThrowsError(try load(json), json) { error in
                XCTAssertEqual(error as? ConfigError, .duplicateKey(source: "test.json", key: key), json)
                XCTAssertTrue("\(error)".contains("\"\(key)\" appears more than once"), "\(error)")
            }
        }
        // Keys that only look alike inside strings and nested values are not duplicates.
        XCTAssertNoThrow(try load(#"{"host": "x\",\"host\":", "port": 1}"#))
        XCTAssertNoThrow(try load(#"{}"#))
        XCTAssertThrowsError(try load(#"{"host": "a", "events": {"host": 1, "host": 2}}"#)) { error in
            guard case .invalidValue(_, "events", _, _)? = error as? ConfigError else { return XCTFail("\(error)") }
        }
    }

    func testNotJSONOrNotAnObject() {
        XCTAssertThrowsError(try load("{")) { guard case .invalidJSON? = $0 as? ConfigError else { return XCTFail() } }
        XCTAssertThrowsError(try load("[1]")) { XCTAssertEqual($0 as? ConfigError, .notAnObject(source: "test.json")) }
        XCTAssertThrowsError(try BenchConfiguration.load(path: "/nonexistent/config.json")) {
            guard case .unreadable? = $0 as? ConfigError else { return XCTFail() }
        }
    }
}
