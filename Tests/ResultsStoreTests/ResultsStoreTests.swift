import Foundation
import LatencyStats
import XCTest

@testable import ResultsStore

final class ResultsStoreTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("results-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    static func run(_ id: String = UUID().uuidString.lowercased(), tool: String = "vtp-receiver", tags: [String: String] = [:])
        -> StoredRun
    {
        StoredRun(
            id: id, tool: tool, toolVersion: "0.3.0", host: "h", tester: "t", startedAt: Date(timeIntervalSince1970: 1_700_000_000),
            config: #"{"port":8098}"#, tags: tags)
    }

    static func interval(_ run: String, _ seq: Int, latencies: [Int64]) -> StoredInterval {
        var recorder = LatencyRecorder()
        for nanos in latencies { recorder.record(nanos: nanos) }
        let start = Int64(1_700_000_000 + seq) * 1_000_000_000
        return StoredInterval(
            ReportInterval(
                startNanos: start, endNanos: start + 1_000_000_000, events: latencies.count, latency: recorder, naks: 1,
                duplicates: 0, missing: 2, openConnections: 3), runID: run, seq: seq)
    }

    func testRunsAndIntervalsRoundTripThroughSQLite() async throws {
        let store = try await SQLiteResults.open(path: path("a.sqlite"))
        var run = Self.run(tags: ["max_connect": "30"])
        try await store.begin(run)
        let intervals = (0..<3).map { Self.interval(run.id, $0, latencies: [1_000_000, 2_000_000, Int64($0 + 3) * 1_000_000]) }
        try await store.append(intervals)
        run.endedAt = run.startedAt.addingTimeInterval(3)
        run.summary = #"{"received":9}"#
        try await store.finish(run)
        await store.close()

        let again = try await SQLiteResults.open(path: path("a.sqlite"), create: false)
        let runs = try await again.runs(RunFilter())
        XCTAssertEqual(runs.count, 1)
        XCTAssertEqual(runs.first?.id, run.id)
        XCTAssertEqual(runs.first?.tags, ["max_connect": "30"])
        XCTAssertEqual(runs.first?.summaryObject["received"] as? Int, 9)
        XCTAssertEqual(runs.first.map { abs($0.endedAt!.timeIntervalSince(run.endedAt!)) } ?? 1, 0, accuracy: 0.001)
        let stored = try await again.intervals(of: run.id)
        XCTAssertEqual(stored.count, 3)
        XCTAssertEqual(stored.map(\.histogram), intervals.map(\.histogram))
        XCTAssertEqual(stored[1].missing, 2)
        XCTAssertEqual(stored[1].backlog, nil)
        XCTAssertEqual(try stored[2].decodedHistogram().totalCount, 3)
        let byPrefix = try await again.run(String(run.id.prefix(6)))
        XCTAssertEqual(byPrefix.id, run.id)
        await XCTAssertThrowsAsync(try await again.run("zz")) { XCTAssertEqual($0 as? StoreError, .unknownRun("zz", store: self.path("a.sqlite"))) }
        let version = try await again.schemaVersion()
        XCTAssertEqual(version, Migrations.latest)
        await again.close()
    }

    func testImportIsIdempotentAndCompletesAnUnfinishedRun() async throws {
        let store = try await SQLiteResults.open(path: path("b.sqlite"))
        var run = Self.run()
        let intervals = [Self.interval(run.id, 0, latencies: [1_000]), Self.interval(run.id, 1, latencies: [2_000])]
        let first = try await store.importRun(run, intervals: [intervals[0]])
        XCTAssertEqual(first, ImportResult(newRun: true, completedRun: false, newIntervals: 1))
        run.endedAt = Date()
        run.summary = "{}"
        let second = try await store.importRun(run, intervals: intervals)
        XCTAssertEqual(second, ImportResult(newRun: false, completedRun: true, newIntervals: 1))
        let third = try await store.importRun(run, intervals: intervals)
        XCTAssertEqual(third, ImportResult(newRun: false, completedRun: false, newIntervals: 0))
        let storedIntervals = try await store.intervals(of: run.id)
        let runs = try await store.runs(RunFilter())
        XCTAssertEqual(storedIntervals.count, 2)
        XCTAssertEqual(runs.count, 1)
        await store.close()
    }

    func testForeignAndDamagedFilesAreNamedNotOverwritten() async throws {
        let garbage = path("garbage.sqlite")
        try Data(repeating: 0x41, count: 4096).write(to: URL(fileURLWithPath: garbage))
        await XCTAssertThrowsAsync(try await SQLiteResults.open(path: garbage)) { error in
            XCTAssertTrue("\(error)".contains("is not a vtpbench results store: not an SQLite database"), "\(error)")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: garbage)), Data(repeating: 0x41, count: 4096))

        // Another application's database.
        let other = path("other.sqlite")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import sqlite3; c=sqlite3.connect('\(other)'); c.execute('create table notes(x)'); c.commit()"]
        try process.run()
        process.waitUntilExit()
        await XCTAssertThrowsAsync(try await SQLiteResults.open(path: other)) { error in
            XCTAssertTrue("\(error)".contains("an SQLite file with other tables (notes)"), "\(error)")
        }
        await XCTAssertThrowsAsync(try await SQLiteResults.open(path: path("none.sqlite"), create: false)) { error in
            XCTAssertTrue("\(error)".contains("no such file"), "\(error)")
        }
    }

    func testANewerSchemaIsRefused() async throws {
        let file = path("newer.sqlite")
        let store = try await SQLiteResults.open(path: file)
        await store.close()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c",
            "import sqlite3; c=sqlite3.connect('\(file)'); c.execute(\"insert into vtpbench_migrations values (99, 'x', 'future')\"); c.commit()",
        ]
        try process.run()
        process.waitUntilExit()
        await XCTAssertThrowsAsync(try await SQLiteResults.open(path: file)) { error in
            XCTAssertEqual(error as? StoreError, .newerSchema(store: file, found: 99, known: Migrations.latest))
        }
    }

    func testTagsAndTargets() throws {
        XCTAssertEqual(try RunTags.parse("max_connect=30").value, "30")
        XCTAssertEqual(try RunTags.parse("delay=a=b").value, "a=b")
        for bad in ["novalue", "=x", "k=", "sp ace=1"] { XCTAssertThrowsError(try RunTags.parse(bad), bad) }
        let (tags, problems) = RunTags.parseAll(["a=1", "oops", "b=2"])
        XCTAssertEqual(tags, ["a": "1", "b": "2"])
        XCTAssertEqual(problems.map(\.description), ["--tag oops: expected key=value, e.g. --tag site=lab2"])

        XCTAssertEqual(try StoreTarget.resolve(flag: nil, environment: [:]), .sqlite(path: "./vtpbench-results.sqlite"))
        XCTAssertEqual(try StoreTarget.resolve(flag: nil, environment: ["VTPBENCH_STORE": "/x/y.sqlite"]), .sqlite(path: "/x/y.sqlite"))
        guard case .collector(let url) = try StoreTarget(parsing: "postgresql://alice:secret@db.example:6543/results?sslmode=require")
        else { return XCTFail("not a collector") }
        XCTAssertEqual(url.redacted, "postgresql://alice@db.example:6543/results")
        XCTAssertEqual(url.password, "secret")
        XCTAssertEqual(url.tls, .require)
        XCTAssertThrowsError(try StoreTarget(parsing: "mysql://a@b/c")) { XCTAssertTrue("\($0)".contains("only postgresql://"), "\($0)") }
        XCTAssertThrowsError(try StoreTarget(parsing: "postgresql://:pw@host/db")) { error in
            XCTAssertFalse("\(error)".contains("pw"), "no password in messages: \(error)")
        }
    }

    func testStoreFlagsProblemsAreLinesAndTheRunIsStillRecorded() throws {
        // On the command line a malformed tag is refused before the run (exit 64)...
        XCTAssertThrowsError(try StoreOptions.parse(["--tag", "site=a", "--tag", "broken"])) { error in
            XCTAssertEqual(StoreOptions.message(for: error), "--tag broken: expected key=value, e.g. --tag site=lab2")
            XCTAssertEqual(StoreOptions.exitCode(for: error).rawValue, 64)
        }
        // ...and one that reaches resolve() anyway costs the tag, not the run.
        var options = try StoreOptions.parse(["--store", "ftp://nowhere", "--tag", "site=a"])
        options.tags.append("broken")
        let resolved = options.resolve(environment: [:])
        XCTAssertEqual(resolved.target, .sqlite(path: "./vtpbench-results.sqlite"))
        XCTAssertEqual(resolved.tags, ["site": "a"])
        XCTAssertEqual(resolved.problems.count, 2, "\(resolved.problems)")
        options.noStore = true
        XCTAssertNil(options.resolve(environment: [:]).target)
    }

    func testRecorderWritesIntervalsInTheBackgroundAndTheSummaryAtTheEnd() async throws {
        let file = path("recorder.sqlite")
        let run = Self.run(tool: "vtp-sender")
        let recorder = RunRecorder(run: run, target: .sqlite(path: file), warn: { XCTFail("unexpected: \($0)") })
        try await recorder.ready.get()
        for seq in 0..<20 {
            var latency = LatencyRecorder()
            latency.record(nanos: Int64(seq + 1) * 1_000_000)
            recorder.record(ReportInterval(startNanos: Int64(seq) * 1_000_000_000, endNanos: Int64(seq + 1) * 1_000_000_000, events: 1, latency: latency))
        }
        let outcome = try await recorder.finish(summary: ["acked": 20]).get()
        XCTAssertEqual(outcome, RecordOutcome(stored: "run \(run.id) stored in \(file)", problems: []))
        let store = try await SQLiteResults.open(path: file, create: false)
        let intervals = try await store.intervals(of: run.id)
        XCTAssertEqual(intervals.map(\.seq), Array(0..<20))
        let runs = try await store.runs(RunFilter())
        XCTAssertEqual(runs.first?.summaryObject["acked"] as? Int, 20)
        await store.close()
    }

    func testADamagedStoreFileGivesOneLineAndTheRunGoesToAFileOfItsOwn() async throws {
        let file = path("damaged.sqlite")
        try Data(repeating: 0x42, count: 8192).write(to: URL(fileURLWithPath: file))
        let previous = FileManager.default.currentDirectoryPath
        _ = FileManager.default.changeCurrentDirectoryPath(directory.path)
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        let run = Self.run()
        let lines = LinesBox()
        let recorder = RunRecorder(run: run, target: .sqlite(path: file), warn: { lines.append($0) })
        try await recorder.ready.get()
        XCTAssertEqual(lines.all.count, 1, "\(lines.all)")
        XCTAssertTrue(
            lines.all.first?.contains("not a vtpbench results store") == true
                && lines.all.first?.contains("vtpbench-run-\(run.id).sqlite") == true, "\(lines.all)")
        recorder.record(ReportInterval(startNanos: 0, endNanos: 1_000_000_000, events: 1, latency: LatencyRecorder()))
        let outcome = try await recorder.finish(summary: [:]).get()
        XCTAssertEqual(outcome.stored, "run \(run.id) stored in ./vtpbench-run-\(run.id).sqlite")
        let fallback = try await SQLiteResults.open(path: RunRecorder.fallbackPath(runID: run.id), create: false)
        let kept = try await fallback.intervals(of: run.id)
        XCTAssertEqual(kept.count, 1)
        await fallback.close()
    }
}

final class LinesBox: @unchecked Sendable {
    // A test helper only: appended from the recorder's loop, read after `ready`/`finish` completed.
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var all: [String] { lock.withLock { lines } }
}

func XCTAssertThrowsAsync<T>(
    _ expression: @autoclosure () async throws -> T, file: StaticString = #filePath, line: UInt = #line,
    _ check: (any Error) -> Void = { _ in }
) async {
    do {
        _ = try await expression()
        XCTFail("no error thrown", file: file, line: line)
    } catch {
        check(error)
    }
}

final class IntervalClockTests: XCTestCase {
    func testOutcomesAreCutIntoAlignedIntervalsAndQuietOnesAreSkipped() throws {
        var clock = IntervalClock(lengthSeconds: 1)
        let second: Int64 = 1_000_000_000
        XCTAssertNil(clock.record(latencyNanos: 2_000_000, atNanos: 10 * second + 100))
        XCTAssertNil(clock.record(latencyNanos: nil, atNanos: 10 * second + 900_000_000))
        // Nothing in second 11: the next outcome, in second 12, closes second 10 only.
        let first = try XCTUnwrap(clock.record(latencyNanos: 4_000_000, atNanos: 12 * second + 5))
        XCTAssertEqual(first.startNanos, 10 * second)
        XCTAssertEqual(first.endNanos, 11 * second)
        XCTAssertEqual(first.events, 1)
        XCTAssertEqual(first.errors, 1)
        XCTAssertEqual(first.latency.count, 1)
        let last = try XCTUnwrap(clock.finish(atNanos: 12 * second + 500_000_000))
        XCTAssertEqual(last.startNanos, 12 * second)
        XCTAssertEqual(last.endNanos, 12 * second + 500_000_000)
        XCTAssertNil(clock.finish(atNanos: 13 * second))
        XCTAssertEqual(IntervalClock(lengthSeconds: .nan).lengthNanos, second, "a bad length falls back to 1 s")
    }
}
