import ArgumentParser
import CommandLineKit
import Foundation
import XCTest

final class SubcommandTyposTests: XCTestCase {
    struct Tool: ParsableCommand {
        static let configuration = CommandConfiguration(subcommands: [Query.self, Sniff.self])
        struct Query: ParsableCommand {}
        struct Sniff: ParsableCommand {}
    }

    func testTypoGetsASuggestionAndStrangersTheList() {
        XCTAssertEqual(Tool.unknownSubcommandMessage(["qeury", "--dsn", "x"]), "unknown subcommand 'qeury'; did you mean 'query'?")
        XCTAssertEqual(Tool.unknownSubcommandMessage(["snif"]), "unknown subcommand 'snif'; did you mean 'sniff'?")
        XCTAssertEqual(Tool.unknownSubcommandMessage(["banana"]), "unknown subcommand 'banana' (one of: query, sniff)")
    }

    func testSubcommandsFlagsAndNothingPassThrough() {
        XCTAssertNil(Tool.unknownSubcommandMessage(["query", "--dsn", "x"]))
        XCTAssertNil(Tool.unknownSubcommandMessage(["--version"]))
        XCTAssertNil(Tool.unknownSubcommandMessage(["help"]))
        XCTAssertNil(Tool.unknownSubcommandMessage([]))
        XCTAssertNil(Tool.Query.unknownSubcommandMessage(["anything"]), "a command without subcommands")
    }
}

final class StatisticsVocabularyTests: XCTestCase {
    func testStatisticsLineIsTheHouseFormatAndEmptyIsNotAvailable() {
        XCTAssertEqual(
            Human.statistics(
                count: 1200, min: 0.000082, avg: 0.000094, max: 0.000864, stddev: 0.00004, p50: 0.000085, p90: 0.000105,
                p99: 0.000307, p999: 0.000381),
            "n=1,200 min/avg/max 0.0820/0.0940/0.864 ms sd 0.0400 ms p50/p90/p99/p99.9 0.0850/0.105/0.307/0.381 ms")
        XCTAssertEqual(
            Human.statistics(count: 0, min: 0, avg: 0, max: 0, stddev: 0, p50: 0, p90: 0, p99: 0, p999: 0), "n/a")
    }

    struct Figures: Codable, Equatable {
        var samples: [Int]
        enum CodingKeys: String, CodingKey { case samples }
        init(samples: [Int]) { self.samples = samples }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(samples, nullIf: samples.isEmpty, forKey: .samples)
        }
        init(from decoder: Decoder) throws {
            samples = try decoder.container(keyedBy: CodingKeys.self).decode([Int].self, nullAs: [], forKey: .samples)
        }
    }

    func testEmptyStatisticsRoundTripAsNull() throws {
        let empty = try JSONEncoder().encode(Figures(samples: []))
        XCTAssertEqual(String(decoding: empty, as: UTF8.self), #"{"samples":null}"#)
        XCTAssertEqual(try JSONDecoder().decode(Figures.self, from: empty), Figures(samples: []))
        XCTAssertEqual(try JSONDecoder().decode(Figures.self, from: Data("{}".utf8)), Figures(samples: []))
        let full = try JSONEncoder().encode(Figures(samples: [3]))
        XCTAssertEqual(try JSONDecoder().decode(Figures.self, from: full), Figures(samples: [3]))
    }
}
