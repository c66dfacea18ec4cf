import ArgumentParser
import CommandLineKit
import Foundation

/// `--store`, `--no-store`, `--tester`, `--tag`: how every measuring tool records its run.
public struct StoreOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Record this run here: an SQLite file or a postgresql:// collector URL (default: $VTPBENCH_STORE, else ./vtpbench-results.sqlite). A collector run is also kept in ./vtpbench-results.sqlite.",
            valueName: "path-or-url"))
    public var store: String?

    @Flag(help: "Do not record this run.")
    public var noStore = false

    @Option(help: "The tester name recorded with the run (default: this host's name).")
    public var tester: String?

    @Option(
        name: .customLong("tag"),
        help: ArgumentHelp("Record key=value with the run, e.g. --tag site=lab2; repeatable.", valueName: "key=value"))
    public var tags: [String] = []

    public init() {}

    /// What the flags ask for, and one line per flag that could not be honoured (the run is
    /// recorded anyway: in the default store, without the malformed tag).
    public func resolve(environment: [String: String] = ProcessInfo.processInfo.environment)
        -> (target: StoreTarget?, tags: [String: String], problems: [String])
    {
        var problems: [String] = []
        let (tags, tagProblems) = RunTags.parseAll(self.tags)
        problems += tagProblems.map { "\($0); the run is recorded without it" }
        if tester?.isEmpty == true { problems.append("--tester is empty; the host name is recorded instead") }
        guard !noStore else { return (nil, tags, problems) }
        do {
            return (try StoreTarget.resolve(flag: store, environment: environment), tags, problems)
        } catch {
            problems.append("\(error); this run is kept in \(StoreTarget.defaultPath) instead")
            return (.sqlite(path: StoreTarget.defaultPath), tags, problems)
        }
    }

    /// Starts recording a run of `tool` (nil with `--no-store`). Problems go to `warn`, one line each.
    /// - Parameters:
    ///   - tags: the tool's own tags (vtp-lab's delay, max_connect, mode); the user's `--tag` win.
    public func recorder(
        tool: String, metadata: RunMetadata, config: [String: Any], tags toolTags: [String: String] = [:],
        warn: @escaping @Sendable (String) -> Void
    ) -> RunRecorder? {
        let (target, tags, problems) = resolve()
        problems.forEach(warn)
        guard let target else { return nil }
        let tester = self.tester.flatMap { $0.isEmpty ? nil : $0 } ?? metadata.host
        let run = StoredRun(
            id: metadata.run_id, tool: tool, toolVersion: metadata.version, host: metadata.host, tester: tester,
            startedAt: StoreTime.date(metadata.started_at) ?? Date(), config: JSONText.text(config),
            tags: toolTags.merging(tags) { _, user in user })
        return RunRecorder(run: run, target: target, warn: warn)
    }

    /// The same flags for a child process (vtp-lab hands them to the tools it runs).
    public func arguments(store overriding: String? = nil) -> [String] {
        var arguments: [String] = []
        if noStore { return ["--no-store"] }
        if let store = overriding ?? store { arguments += ["--store", store] }
        if let tester { arguments += ["--tester", tester] }
        for tag in tags { arguments += ["--tag", tag] }
        return arguments
    }
}
