import Foundation
import XCTest

@testable import FuzzTargets

/// Every fuzz target over its committed corpus, its regression inputs (crashes the fuzzer
/// found, kept after the fix) and its freshly generated seeds: fast, without the fuzzer, so a
/// target that no longer builds or a fixed crash that comes back fails the ordinary tests.
final class CorpusReplayTests: XCTestCase {
    static let fuzzDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz").path

    func testEveryTargetHasCommittedSeeds() {
        for target in FuzzTarget.all {
            let seeds = FuzzCorpus.files(in: [Self.fuzzDirectory + "/corpus/" + target.name])
            XCTAssertFalse(seeds.isEmpty, "Fuzz/corpus/\(target.name) is empty (vtpbench-fuzz seeds Fuzz/corpus)")
        }
    }

    func testCommittedCorporaAndRegressionsReplayWithoutACrash() {
        for target in FuzzTarget.all {
            let replayed = FuzzCorpus.replay(
                target, paths: [Self.fuzzDirectory + "/corpus/" + target.name, Self.fuzzDirectory + "/regressions/" + target.name])
            XCTAssertGreaterThan(replayed, 0, target.name)
        }
    }

    func testGeneratedSeedsReplayWithoutACrash() {
        for target in FuzzTarget.all {
            let seeds = FuzzSeeds.seeds(for: target.name)
            XCTAssertGreaterThanOrEqual(seeds.count, 3, target.name)
            for (_, bytes) in seeds { bytes.withUnsafeBytes { target.run($0) } }
        }
    }

    func testSplitPointsCoverTheInputAndRepeat() {
        let input: [UInt8] = Array(0..<200)
        let chunks = input.withUnsafeBytes { bytes -> [Int] in
            var splits = SplitPoints(bytes)
            return splits.chunks(covering: bytes.count)
        }
        XCTAssertEqual(chunks.reduce(0, +), 200)
        XCTAssertTrue(chunks.allSatisfy { $0 >= 1 })
        XCTAssertGreaterThan(chunks.count, 1, "an input is read in several pieces")
        let again = input.withUnsafeBytes { bytes -> [Int] in
            var splits = SplitPoints(bytes)
            return splits.chunks(covering: bytes.count)
        }
        XCTAssertEqual(chunks, again, "the same input is split the same way")
    }
}
