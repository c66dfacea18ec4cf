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

    func testNotJSONOrNotAnObject() {
        XCTAssertThrowsError(try load("{")) { guard case .invalidJSON? = $0 as? ConfigError else { return XCTFail() } }
        XCTAssertThrowsError(try load("[1]")) { XCTAssertEqual($0 as? ConfigError, .notAnObject(source: "test.json")) }
        XCTAssertThrowsError(try BenchConfiguration.load(path: "/nonexistent/config.json")) {
            guard case .unreadable? = $0 as? ConfigError else { return XCTFail() }
        }
    }
}
