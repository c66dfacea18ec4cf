import ArgumentParser
import CommandLineKit
import Foundation
import ReportCore
import ResultsCollector
import ResultsStore

/// vtp-report: the stored runs, as tables, comparisons, exports and a self-contained HTML report.
struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vtp-report",
        abstract: "List, show, compare, plot and export the runs vtpbench tools recorded; upload them to a collector.",
        discussion: """
            The tools record every run (--store; default $VTPBENCH_STORE, else ./vtpbench-results.sqlite). \
            A run is named by its id or any unique start of it (as `list` shows it). Percentiles over \
            several intervals or runs come from their merged histograms.
            Exit status: 0 done, 2 the store could not be read or written (missing, damaged, collector \
            unreachable or refusing), 64 bad arguments (unknown run, malformed tag).
            """,
        version: VTPBenchVersion.string,
        subcommands: [
            ListCommand.self, ShowCommand.self, CompareCommand.self, HTMLCommand.self, ExportCommand.self,
            PushCommand.self, MigrateCommand.self,
        ])
}

/// `--store` of the reading subcommands.
struct StoreFlag: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The store to read: an SQLite file or a postgresql:// URL (default: $VTPBENCH_STORE, else ./vtpbench-results.sqlite).",
            valueName: "path-or-url"))
    var store: String?

    func target() throws -> StoreTarget {
        do { return try StoreTarget.resolve(flag: store) } catch { throw Failure.usage(error.description) }
    }

    func open() async throws -> any ResultsBackend { try await Stores.open(try target(), create: false) }
}

/// `--tag`, `--tool`, `--since`: which runs.
struct SelectionFlags: ParsableArguments {
    @Option(name: .customLong("tag"), help: ArgumentHelp("Only runs with this tag; repeatable.", valueName: "key=value"))
    var tags: [String] = []
    @Option(help: "Only runs of this tool (vtp-sender, vtp-receiver, pgprobe, vtp-lab).") var tool: String?
    @Option(
        help: ArgumentHelp(
            "Only runs started since then: an ISO 8601 time (2026-05-01, 2026-05-01T12:00:00Z) or an age (90m, 2h, 7d).",
            valueName: "time"))
    var since: String?

    func filter(ids: [String] = [], now: Date = Date()) throws -> RunFilter {
        let tags: [String: String]
        do { tags = try RunTags.parseFilter(self.tags) } catch { throw Failure.usage(error.description) }
        return RunFilter(tags: tags, tool: tool, since: try since.map { try Self.date($0, now: now) }, ids: ids)
    }

    static func date(_ text: String, now: Date) throws -> Date {
        if text.hasSuffix("d"), let days = Double(text.dropLast()), days >= 0, days.isFinite {
            return now.addingTimeInterval(-days * 86_400)
        }
        if let seconds = try? Durations.parseSeconds(text, bareUnit: .seconds, maximumSeconds: 366 * 86_400),
            text.last?.isLetter == true
        {
            return now.addingTimeInterval(-seconds)
        }
        if let date = StoreTime.date(text) ?? StoreTime.date(text + "T00:00:00Z") { return date }
        throw Failure.usage("--since \(text): expected an ISO 8601 time (2026-05-01, 2026-05-01T12:00:00Z) or an age (90m, 2h, 7d)")
    }
}

/// One line on stderr and an exit status.
enum Failure: Error {
    case usage(String)
    case store(String)

    static func from(_ error: any Error) -> Failure {
        if let failure = error as? Failure { return failure }
        if let store = error as? StoreError {
            switch store {
            case .badTag, .badTarget, .unknownRun, .ambiguousRun: return .usage(store.description)
            default: return .store(store.description)
            }
        }
        return .store(UserMessage.describe(error))
    }
}

enum Stores {
    static func open(_ target: StoreTarget, create: Bool) async throws -> any ResultsBackend {
        switch target {
        case .sqlite(let path): return try await SQLiteResults.open(path: path, create: create)
        case .collector(let url): return try await PostgresResults.open(url, migrate: create)
        }
    }

    /// Runs `body` with the store open, closing it after; failures become one line and a status.
    static func with<T>(_ open: () async throws -> any ResultsBackend, _ body: (any ResultsBackend) async throws -> T)
        async throws -> T
    {
        let store: any ResultsBackend
        do { store = try await open() } catch { throw Failure.from(error) }
        do {
            let value = try await body(store)
            await store.close()
            return value
        } catch {
            await store.close()
            throw Failure.from(error)
        }
    }

    static func digests(_ ids: [String], in store: any ResultsBackend) async throws -> [RunDigest] {
        var digests: [RunDigest] = []
        for id in ids {
            let run = try await store.run(id)
            digests.append(RunDigest(run: run, intervals: try await store.intervals(of: run.id)))
        }
        return digests
    }

    static func digests(_ filter: RunFilter, in store: any ResultsBackend) async throws -> [RunDigest] {
        var digests: [RunDigest] = []
        for run in try await store.runs(filter) {
            digests.append(RunDigest(run: run, intervals: try await store.intervals(of: run.id)))
        }
        return digests
    }
}

struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "One line per run: id, tool, tester, start, duration, p50/p99, tags.")
    @OptionGroup var store: StoreFlag
    @OptionGroup var selection: SelectionFlags
    @Flag(help: "An array of {id, tool, tester, started_at, ended_at, tags} instead.") var json = false

    func run() async throws {
        let filter = try selection.filter()
        let runs = try await Stores.with(store.open) { try await $0.runs(filter) }
        if json { print(ReportText.listJSON(runs)) } else { ReportText.list(runs).forEach { print($0) } }
    }
}

struct ShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "One run: who, when, settings, tags, the summary's figures, and every report interval.")
    @OptionGroup var store: StoreFlag
    @Argument(help: "The run id (or a unique start of it).") var run: String

    func run() async throws {
        let digest = try await Stores.with(store.open) { try await Stores.digests([run], in: $0)[0] }
        ReportText.show(digest).forEach { print($0) }
    }
}

struct CompareCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Runs side by side (p50, p99, max, throughput, loss, change from the first), or a sweep by a tag.",
        discussion: """
            vtp-report compare 3f2a 9c41            two runs side by side
            vtp-report compare --by max_connect     every run tagged max_connect, a row per value and tool
            vtp-report compare --by delay --tag sweep=1 --tool vtp-receiver
            """)
    @OptionGroup var store: StoreFlag
    @OptionGroup var selection: SelectionFlags
    @Option(help: ArgumentHelp("A table by this tag's values (e.g. max_connect, delay).", valueName: "tag")) var by: String?
    @Argument(help: "Run ids (with --by: optional, else the runs --tag/--tool/--since select).") var runs: [String] = []

    func run() async throws {
        if by == nil, runs.count < 2 { throw Failure.usage("compare needs two runs or more, or --by TAG") }
        let filter = try selection.filter()
        let digests = try await Stores.with(store.open) { store in
            runs.isEmpty ? try await Stores.digests(filter, in: store) : try await Stores.digests(runs, in: store)
        }
        if let by {
            ReportText.compare(by: by, digests).forEach { print($0) }
        } else {
            ReportText.compare(digests).forEach { print($0) }
        }
    }
}

struct HTMLCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "html",
        abstract: "One self-contained HTML file (inline SVG, no network): latency smoke, percentile spectrum, throughput and backlog, sweeps, tester × target matrix.")
    @OptionGroup var store: StoreFlag
    @OptionGroup var selection: SelectionFlags
    @Option(name: .shortAndLong, help: "The HTML file to write.") var output: String
    @Option(help: ArgumentHelp("Plot latency against this tag's values (default: a tag whose value differs between the runs, e.g. max_connect).", valueName: "tag"))
    var by: String?
    @Argument(help: "Run ids (default: the runs --tag/--tool/--since select).") var runs: [String] = []

    func run() async throws {
        do { try OutputPaths.check(output, flag: "-o") } catch { throw Failure.usage("\(error)") }
        let filter = try selection.filter()
        let digests = try await Stores.with(store.open) { store in
            runs.isEmpty ? try await Stores.digests(filter, in: store) : try await Stores.digests(runs, in: store)
        }
        guard !digests.isEmpty else { throw Failure.usage("no runs selected (vtp-report list shows them)") }
        let html = HTMLReport(digests: digests, sweepTag: by, storeName: (try? store.target().description) ?? "").render()
        do { try Data(html.utf8).write(to: URL(fileURLWithPath: output), options: .atomic) } catch {
            throw Failure.store("cannot write \(output): \(UserMessage.describe(error))")
        }
        print("vtp-report: wrote \(output) (\(digests.count) runs, \(Human.grouped(Int64(html.utf8.count))) bytes)")
    }
}

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "A run's latency as an HdrHistogram percentile distribution (--hgrm, values in ms) or its intervals as CSV (--csv).")
    @OptionGroup var store: StoreFlag
    @Flag(help: "The merged histogram as .hgrm text (Value Percentile TotalCount 1/(1-Percentile), ms).") var hgrm = false
    @Flag(help: "One CSV row per report interval.") var csv = false
    @Option(name: .shortAndLong, help: "Write here instead of standard output.") var output: String?
    @Argument(help: "The run id (or a unique start of it).") var run: String

    func run() async throws {
        guard hgrm != csv else { throw Failure.usage("give one of --hgrm or --csv") }
        if let output { do { try OutputPaths.check(output, flag: "-o") } catch { throw Failure.usage("\(error)") } }
        let digest = try await Stores.with(store.open) { try await Stores.digests([run], in: $0)[0] }
        let text = hgrm ? ReportExport.hgrm(digest) : ReportExport.csv(digest)
        if let output {
            do { try Data(text.utf8).write(to: URL(fileURLWithPath: output), options: .atomic) } catch {
                throw Failure.store("cannot write \(output): \(UserMessage.describe(error))")
            }
        } else {
            print(text, terminator: "")
        }
    }
}

struct PushCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push",
        abstract: "Upload runs from a local store to a collector (or another store); runs already there are skipped, so it can be repeated.",
        discussion: """
            vtp-report push --to postgresql://alice@collector/vtpbench          every run in ./vtpbench-results.sqlite
            vtp-report push --store lab.sqlite --to postgresql://… --tag sweep=7
            """)
    @OptionGroup var store: StoreFlag
    @OptionGroup var selection: SelectionFlags
    @Option(help: ArgumentHelp("Where to: a postgresql:// URL (or an SQLite file).", valueName: "url-or-path")) var to: String
    @Flag(help: "No line per run.") var quiet = false
    @Argument(help: "Run ids (default: every run the selection takes).") var runs: [String] = []

    func run() async throws {
        let destination: StoreTarget
        do { destination = try StoreTarget(parsing: to) } catch { throw Failure.usage(error.description.replacingOccurrences(of: "--store", with: "--to")) }
        let filter = try selection.filter()
        let quiet = quiet
        let runs = runs
        let moved = try await Stores.with(store.open) { source in
            let chosen = runs.isEmpty ? try await source.runs(filter) : try await runIDs(runs, in: source)
            return try await Stores.with({ try await Stores.open(destination, create: true) }) { target in
                var totals = (runs: 0, new: 0, intervals: 0)
                for run in chosen {
                    let result = try await target.importRun(run, intervals: try await source.intervals(of: run.id))
                    totals.runs += 1
                    totals.new += result.newRun ? 1 : 0
                    totals.intervals += result.newIntervals
                    if !quiet {
                        print(
                            "\(RunDigest.shortID(run.id)) \(run.tool): "
                                + (result.newRun ? "uploaded" : result.completedRun ? "completed" : "already there")
                                + ", \(result.newIntervals) new intervals")
                    }
                }
                return totals
            }
        }
        if !quiet {
            print(
                "vtp-report: \(moved.runs) runs to \(destination) (\(moved.new) new, \(moved.runs - moved.new) already there), "
                    + "\(moved.intervals) intervals added")
        }
    }

    private func runIDs(_ ids: [String], in store: any ResultsBackend) async throws -> [StoredRun] {
        var runs: [StoredRun] = []
        for id in ids { runs.append(try await store.run(id)) }
        return runs
    }
}

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Create or update the results schema of a store (as the collector database's owner: testers' roles may not).")
    @OptionGroup var store: StoreFlag

    func run() async throws {
        let target = try store.target()
        let version = try await Stores.with({ try await Stores.open(target, create: true) }) { backend in
            if let sqlite = backend as? SQLiteResults { return try await sqlite.schemaVersion() }
            if let postgres = backend as? PostgresResults { return try await postgres.schemaVersion() }
            return Migrations.latest
        }
        print("vtp-report: \(target) is at schema version \(version)")
    }
}

/// Parses and runs, turning every failure into one line on stderr and an exit status.
func runReport() async {
    let arguments = Array(CommandLine.arguments.dropFirst())
    if let message = ReportCommand.unknownSubcommandMessage(arguments) {
        FileHandle.standardError.write(Data("vtp-report: \(message)\n".utf8))
        exit(ExitStatus.usage.rawValue)
    }
    do {
        var command = try ReportCommand.parseAsRoot(arguments)
        if var async = command as? AsyncParsableCommand { try await async.run() } else { try command.run() }
    } catch let failure as Failure {
        switch failure {
        case .usage(let line):
            FileHandle.standardError.write(Data("vtp-report: \(line)\n".utf8))
            exit(ExitStatus.usage.rawValue)
        case .store(let line):
            FileHandle.standardError.write(Data("vtp-report: \(line)\n".utf8))
            exit(ExitStatus.runFailed.rawValue)
        }
    } catch {
        ReportCommand.exit(withError: error)
    }
}

await runReport()
