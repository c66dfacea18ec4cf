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

    /// A malformed `--tag` is refused before the run starts (exit 64), like any other bad flag:
    /// a run recorded without the tag its user asked for could not be found by it later.
    public func validate() throws {
        let (_, problems) = RunTags.parseAll(tags)
        if let first = problems.first { throw ValidationError(first.description) }
    }

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

}

/// How a tool that runs other tools (vtp-lab) records: its own run and the children's in one
/// local file, each child tagged with the sweep's id and its case's settings; for a collector,
/// everything is uploaded at the end from here (the children may run in namespaces that cannot
/// reach it).
public struct ChildRecording: Sendable {
    /// nil: `--no-store`.
    public let localPath: String?
    public let collector: CollectorURL?
    public let tester: String?
    public let tags: [String: String]
    public let problems: [String]
    /// The sweep: the parent's run id; the parent and every child are tagged `sweep=<id>`.
    public let parentRunID: String

    public init(_ options: StoreOptions, sweepID: String, environment: [String: String] = ProcessInfo.processInfo.environment) {
        let (target, tags, problems) = options.resolve(environment: environment)
        self.tags = tags
        self.problems = problems
        self.parentRunID = sweepID
        tester = options.tester.flatMap { $0.isEmpty ? nil : $0 }
        let cwd = FileManager.default.currentDirectoryPath
        func absolute(_ path: String) -> String {
            path.hasPrefix("/") ? path : URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: cwd + "/")).standardizedFileURL.path
        }
        switch target {
        case nil:
            localPath = nil
            collector = nil
        case .sqlite(let path)?:
            localPath = absolute(path)
            collector = nil
        case .collector(let url)?:
            localPath = absolute(StoreTarget.defaultPath)
            collector = url
        }
    }

    /// The parent's own tags: the user's and the sweep's id.
    public var parentTags: [String: String] { tags.merging(["sweep": parentRunID]) { user, _ in user } }

    /// A child's flags: the local store, the tester, the parent's id, `caseTags`, then the user's tags.
    public func arguments(caseTags: [String: String]) -> [String] {
        guard let localPath else { return ["--no-store"] }
        var arguments = ["--store", localPath]
        if let tester { arguments += ["--tester", tester] }
        let all = caseTags.merging(["sweep": parentRunID]) { old, _ in old }.merging(tags) { _, user in user }
        for key in all.keys.sorted() { arguments += ["--tag", "\(key)=\(all[key] ?? "")"] }
        return arguments
    }

    /// Uploads the parent's run and its children to the collector (if there is one).
    public func uploadAndWait() -> CollectorHandoff.Outcome? {
        guard let collector, let localPath else { return nil }
        return CollectorHandoff.pushAndWait(selection: ["--tag", "sweep=\(parentRunID)"], from: localPath, to: collector)
    }
}
