import ArgumentParser
import CommandLineKit
import Foundation
import XCTest

final class DurationTests: XCTestCase {
    func testUnitsAndBareNumbers() throws {
        XCTAssertEqual(try Durations.parseSeconds("250ms", bareUnit: .seconds), 0.25, accuracy: 1e-12)
        XCTAssertEqual(try Durations.parseSeconds("2s", bareUnit: .milliseconds), 2, accuracy: 1e-12)
        XCTAssertEqual(try Durations.parseSeconds("1m", bareUnit: .seconds), 60, accuracy: 1e-12)
        XCTAssertEqual(try Durations.parseSeconds("1h", bareUnit: .seconds), 3600, accuracy: 1e-12)
        XCTAssertEqual(try Durations.parseSeconds("500us", bareUnit: .seconds), 0.0005, accuracy: 1e-15)
        XCTAssertEqual(try Durations.parseSeconds("500µs", bareUnit: .seconds), 0.0005, accuracy: 1e-15)
        XCTAssertEqual(try Durations.parseSeconds("100000ns", bareUnit: .seconds), 0.0001, accuracy: 1e-15)
        XCTAssertEqual(try Durations.parseSeconds(" 1.5 s ", bareUnit: .milliseconds), 1.5, accuracy: 1e-12)
        XCTAssertEqual(try Durations.parseSeconds("10", bareUnit: .seconds), 10, accuracy: 1e-12)
        XCTAssertEqual(try Durations.parseSeconds("250", bareUnit: .milliseconds), 0.25, accuracy: 1e-12)
        XCTAssertEqual(try Durations.parseSeconds("0", bareUnit: .seconds), 0)
    }

    func testHostileValuesAreRejectedWithAReason() {
        for (text, reason) in [
            ("1e300", "too long"), ("1e308ms", "too long"), ("inf", "finite"), ("nan", "finite"), ("-5", "negative"),
            ("-1ms", "negative"), ("", "not a duration"), ("ms", "not a duration"), ("abc", "not a duration"),
            ("5 parsecs", "not a duration"), ("8d", "not a duration"),
        ] {
            XCTAssertThrowsError(try Durations.parseSeconds(text, bareUnit: .seconds), text) { error in
                XCTAssertTrue("\(error)".contains(reason), "\(text): \(error)")
            }
        }
        XCTAssertNoThrow(try Durations.parseSeconds("168h", bareUnit: .seconds))
        XCTAssertThrowsError(try Durations.parseSeconds("169h", bareUnit: .seconds))
    }

    func testArgumentsParseThroughArgumentParser() throws {
        struct Command: ParsableCommand {
            @Option var period: SecondsArgument = SecondsArgument(seconds: 10)
            @Option var delay: MillisecondsArgument = MillisecondsArgument(seconds: 0)
        }
        let parsed = try Command.parse(["--period", "500ms", "--delay", "250"])
        XCTAssertEqual(parsed.period.seconds, 0.5, accuracy: 1e-12)
        XCTAssertEqual(parsed.delay.milliseconds, 250, accuracy: 1e-9)
        XCTAssertThrowsError(try Command.parse(["--period", "1e300"]))
        XCTAssertThrowsError(try Command.parse(["--delay", "soon"]))
    }
}

final class HumanFormatTests: XCTestCase {
    func testDurationsScaleToMillisecondsOrSeconds() {
        XCTAssertEqual(Human.duration(seconds: 0.000277), "0.277 ms")
        XCTAssertEqual(Human.duration(seconds: 1.25), "1.25 s")
        XCTAssertEqual(Human.duration(seconds: 0.25), "250 ms")
        XCTAssertEqual(Human.duration(seconds: 0.0000452), "0.0452 ms")
        XCTAssertEqual(Human.duration(seconds: 12.345), "12.3 s")
        XCTAssertEqual(Human.duration(seconds: 0), "0 ms")
        XCTAssertEqual(Human.duration(seconds: nil), "n/a")
        XCTAssertEqual(Human.duration(seconds: .nan), "n/a")
        XCTAssertEqual(Human.duration(seconds: -0.0021), "-2.10 ms")
        // Offsets carry their sign (clock offsets: receiver − sender).
        XCTAssertEqual(Human.signedDuration(seconds: 0.000008), "+0.00800 ms")
        XCTAssertEqual(Human.signedDuration(seconds: -0.0125), "-12.5 ms")
        XCTAssertEqual(Human.signedDuration(seconds: nil), "n/a")
    }

    func testMinAvgMaxUsesOneUnitInThatOrder() {
        XCTAssertEqual(Human.minAvgMax(min: 0.000135, avg: 0.000277, max: 0.00102), "min/avg/max 0.135/0.277/1.02 ms")
        XCTAssertEqual(Human.minAvgMax(min: 0.25, avg: 0.5, max: 1.5), "min/avg/max 0.250/0.500/1.50 s")
        XCTAssertEqual(Human.minAvgMax(min: nil, avg: nil, max: nil), "min/avg/max n/a")
    }

    func testPercentilesAndRates() {
        XCTAssertEqual(
            Human.percentiles([("p50", 0.25), ("p99", 0.26)]), "p50/p99 250/260 ms")
        XCTAssertEqual(Human.percentiles([("p50", nil)]), "p50 n/a")
        XCTAssertEqual(Human.rate(35803.4, unit: "events"), "35,803 events/s")
        XCTAssertEqual(Human.rate(46.3, unit: "events"), "46.3 events/s")
        XCTAssertEqual(Human.rate(nil, unit: "queries"), "n/a queries/s")
        XCTAssertEqual(Human.grouped(1_234_567), "1,234,567")
        XCTAssertEqual(Human.grouped(-1000), "-1,000")
    }
}

final class OutputPathTests: XCTestCase {
    func testMissingDirectoryAndDirectoriesAreRefusedBeforeAnyRun() throws {
        XCTAssertThrowsError(try OutputPaths.check("/nonexistent/dir/r.json", flag: "--summary-json")) { error in
            XCTAssertEqual("\(error)", "--summary-json /nonexistent/dir/r.json: directory /nonexistent/dir does not exist")
        }
        XCTAssertThrowsError(try OutputPaths.check("/tmp", flag: "--json")) { error in
            XCTAssertTrue("\(error)".contains("is a directory"))
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kit-\(UUID()).json").path
        XCTAssertNoThrow(try OutputPaths.check(path, flag: "--summary-json"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "the check creates nothing")
        XCTAssertNoThrow(try OutputPaths.check("relative-file.json", flag: "--csv"))
        XCTAssertNoThrow(try OutputPaths.check([("--a", nil), ("--b", path)]))
    }
}

final class SummaryJSONTests: XCTestCase {
    struct Summary: Codable { var events: Int; var latency_s: Double? }

    func testMetadataAndSettingsAreAddedAndNilIsNull() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kit-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let metadata = RunMetadata()
        try SummaryJSON.write(Summary(events: 3, latency_s: nil), metadata: metadata, settings: ["rate": 46.3], to: path)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        XCTAssertEqual(object["events"] as? Int, 3)
        XCTAssertEqual(object["run_id"] as? String, metadata.run_id)
        XCTAssertNotNil(UUID(uuidString: metadata.run_id))
        XCTAssertEqual(object["version"] as? String, VTPBenchVersion.string)
        XCTAssertFalse((object["host"] as? String ?? "").isEmpty)
        XCTAssertTrue((object["started_at"] as? String ?? "").hasSuffix("Z"))
        XCTAssertEqual((object["settings"] as? [String: Any])?["rate"] as? Double, 46.3)
        XCTAssertThrowsError(try SummaryJSON.write(Summary(events: 1, latency_s: 1), to: "/nonexistent/x.json")) { error in
            XCTAssertTrue("\(error)".hasPrefix("cannot write /nonexistent/x.json"), "\(error)")
        }
    }

    func testDecodingErrorsReadWithoutTypeNames() {
        struct Config: Decodable { var port: Int }
        do {
            _ = try JSONDecoder().decode(Config.self, from: Data("{\"port\": \"x\"}".utf8))
            XCTFail("decoded")
        } catch {
            let text = UserMessage.describe(error)
            XCTAssertFalse(text.contains("DecodingError"), text)
            XCTAssertTrue(text.contains("port"), text)
        }
        do {
            _ = try JSONDecoder().decode(Config.self, from: Data("{".utf8))
            XCTFail("decoded")
        } catch {
            let text = UserMessage.describe(error)
            XCTAssertTrue(text.hasPrefix("not valid JSON"), text)
        }
    }

    func testCSVQuoting() {
        XCTAssertEqual(CSV.row(["a", "b,c", "say \"hi\"", "x\ny"]), "a,\"b,c\",\"say \"\"hi\"\"\",\"x\ny\"")
    }
}

final class SuggestionTests: XCTestCase {
    func testTyposFindTheirWordAndStrangersDoNot() {
        XCTAssertEqual(Suggestions.closest(to: "qeury", among: ["query", "sniff", "crosscheck"]), "query")
        XCTAssertEqual(Suggestions.closest(to: "analyse", among: ["analyze", "live"]), "analyze")
        XCTAssertEqual(Suggestions.closest(to: "runn", among: ["run", "sweep", "reproduce-2012"]), "run")
        XCTAssertEqual(Suggestions.closest(to: "lisen", among: ["listen", "upstream"]), "listen")
        XCTAssertNil(Suggestions.closest(to: "banana", among: ["query", "sniff"]))
        XCTAssertEqual(Suggestions.editDistance("ab", "ba"), 1)
        XCTAssertEqual(Suggestions.editDistance("", "abc"), 3)
    }
}
