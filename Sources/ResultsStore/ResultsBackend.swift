/// A place runs are stored: the SQLite file (`SQLiteResults`) or the PostgreSQL collector
/// (`ResultsCollector.PostgresResults`). One schema, one set of operations. Implementations
/// serialise their own calls; callers may call from any task, one call at a time.
public protocol ResultsBackend: Sendable {
    /// Printable, without secrets.
    var name: String { get }
    /// Adds a run as it starts (nothing happens if its id is there already).
    func begin(_ run: StoredRun) async throws
    /// Adds intervals of a started run, in one transaction (ones already there are skipped).
    func append(_ intervals: [StoredInterval]) async throws
    /// Sets the end, the summary and the final configuration of a run.
    func finish(_ run: StoredRun) async throws
    /// A whole run at once, in one transaction, idempotently (`vtp-report push`): a run already
    /// there is completed if it had not ended, intervals already there are skipped.
    func importRun(_ run: StoredRun, intervals: [StoredInterval]) async throws -> ImportResult
    /// Runs matching `filter`, oldest first.
    func runs(_ filter: RunFilter) async throws -> [StoredRun]
    func intervals(of runID: String) async throws -> [StoredInterval]
    func close() async
}

public struct ImportResult: Sendable, Equatable {
    public var newRun: Bool
    public var completedRun: Bool
    public var newIntervals: Int

    public init(newRun: Bool, completedRun: Bool, newIntervals: Int) {
        self.newRun = newRun
        self.completedRun = completedRun
        self.newIntervals = newIntervals
    }
}

extension ResultsBackend {
    /// The run whose id is `idOrPrefix` or starts with it (as git takes short hashes).
    public func run(_ idOrPrefix: String) async throws -> StoredRun {
        let wanted = idOrPrefix.lowercased()
        let all = try await runs(RunFilter())
        if let exact = all.first(where: { $0.id == wanted }) { return exact }
        let matches = all.filter { $0.id.hasPrefix(wanted) }
        guard !wanted.isEmpty, let first = matches.first else { throw StoreError.unknownRun(idOrPrefix, store: name) }
        guard matches.count == 1 else { throw StoreError.ambiguousRun(idOrPrefix, matches: matches.count, store: name) }
        return first
    }
}
