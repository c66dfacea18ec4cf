import Foundation
import NIOCore
import PostgresNIO
import CommandLineKit

public struct FailoverProbeOptions: Sendable {
    public var primary: DSN
    /// Where the ledger is kept (required for a run; `--init`/`--reset` prepare it when given).
    public var repo: DSN?
    public var workers: Int
    public var durationNanos: Int64
    public var warmupNanos: Int64
    public var mix: OperationMix
    /// `--async-repo-mode`: record through an ordered queue instead of before the next operation.
    public var asyncRepo: Bool
    public var fullValidation: Bool
    /// `--rto-conn-timeout`: each connection attempt (TCP connect and login).
    public var connectTimeoutNanos: Int64
    public var statementTimeoutNanos: Int64
    /// Pause after a failed attempt before the next (bounded retry, no spin).
    public var retryIntervalNanos: Int64
    /// Wait after the load before the final check.
    public var validationDelayNanos: Int64
    /// How long the final check waits for a read-write server.
    public var finalCheckTimeoutNanos: Int64
    public var reportIntervalNanos: Int64

    public init(
        primary: DSN, repo: DSN?, workers: Int = 4, durationNanos: Int64 = 60_000_000_000, warmupNanos: Int64 = 0,
        mix: OperationMix, asyncRepo: Bool = false, fullValidation: Bool = false, connectTimeoutNanos: Int64 = 1_000_000_000,
        statementTimeoutNanos: Int64 = 5_000_000_000, retryIntervalNanos: Int64 = 50_000_000, validationDelayNanos: Int64 = 0,
        finalCheckTimeoutNanos: Int64 = 60_000_000_000, reportIntervalNanos: Int64 = 1_000_000_000
    ) {
        self.primary = primary
        self.repo = repo
        self.workers = workers
        self.durationNanos = durationNanos
        self.warmupNanos = warmupNanos
        self.mix = mix
        self.asyncRepo = asyncRepo
        self.fullValidation = fullValidation
        self.connectTimeoutNanos = connectTimeoutNanos
        self.statementTimeoutNanos = statementTimeoutNanos
        self.retryIntervalNanos = retryIntervalNanos
        self.validationDelayNanos = validationDelayNanos
        self.finalCheckTimeoutNanos = finalCheckTimeoutNanos
        self.reportIntervalNanos = reportIntervalNanos
    }
}

/// What the probe tells its caller as it runs (on the collecting task, one at a time).
public enum FailoverProbeEvent: Sendable {
    /// A progress line, every report interval.
    case progress(String)
    /// Something a user should read now (a worker's first failure in an outage, recovery).
    case notice(String)
    /// One operation's outcome and its latency (send → answer; nil when there was none).
    /// A place for live metrics to count from.
    case operation(worker: Int, kind: OperationKind, status: OperationStatus?, latencyNanos: Int64?)
}

/// The run could not be carried out (no primary, no repo, rejected login): one line.
public struct FailoverProbeError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// `pgprobe failover`: workers write to their own tables on the primary through failovers;
/// every acknowledged operation goes to the repo database; afterwards the new primary is
/// checked against the ledger. Workers run in child tasks and report to `run`'s task by
/// message; that task alone owns the timeline and the ledger.
public struct FailoverProbe: Sendable {
    public let options: FailoverProbeOptions
    public let runID: String
    let primary: FailoverConnector
    let repo: FailoverConnector

    public init(options: FailoverProbeOptions, runID: String = UUID().uuidString) {
        self.options = options
        self.runID = runID
        primary = FailoverConnector(
            dsn: options.primary, connectTimeoutNanos: options.connectTimeoutNanos,
            statementTimeoutNanos: options.statementTimeoutNanos)
        repo = FailoverConnector(
            dsn: options.repo ?? options.primary, connectTimeoutNanos: max(options.connectTimeoutNanos, 5_000_000_000),
            statementTimeoutNanos: max(options.statementTimeoutNanos, 30_000_000_000))
    }

    public static func table(_ worker: Int) -> String { "pgprobe_failover_\(worker)" }
    public static let repoTable = "pgprobe_failover_ops"

    // MARK: preparing

    /// `--init`: creates the worker tables on the primary and the ledger table in the repo.
    public func initialize() async throws {
        try await withPrimary { connection in
            for worker in 1...options.workers {
                try await check(
                    primary.run(
                        """
                        CREATE TABLE IF NOT EXISTS \(unescaped: Self.table(worker)) (id bigint PRIMARY KEY, version bigint NOT NULL,
                        t text NOT NULL, last_update timestamptz NOT NULL)
                        """, on: connection), "creating \(Self.table(worker))")
            }
        }
        try await withRepo { connection in
            try await check(
                repo.run(
                    """
                    CREATE TABLE IF NOT EXISTS \(unescaped: Self.repoTable) (run_id text NOT NULL, worker int NOT NULL,
                    seq bigint NOT NULL, kind text NOT NULL, row_id bigint NOT NULL, status text NOT NULL, resolution text,
                    at_s double precision NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (run_id, worker, seq))
                    """, on: connection), "creating \(Self.repoTable)")
        }
    }

    /// `--reset`: empties the worker tables and the ledger.
    public func reset() async throws {
        try await initialize()
        try await withPrimary { connection in
            let tables = (1...options.workers).map(Self.table).joined(separator: ", ")
            try await check(primary.run("TRUNCATE \(unescaped: tables)", on: connection), "emptying the tables")
        }
        try await withRepo { connection in
            try await check(repo.run("TRUNCATE \(unescaped: Self.repoTable)", on: connection), "emptying \(Self.repoTable)")
        }
    }

    private func withPrimary(_ body: (PostgresConnection) async throws -> Void) async throws {
        let connection: PostgresConnection
        switch try await primary.findReadWrite(startingAt: 0, id: 1, onLogin: { _ in }) {
        case .found(let found, _): connection = found
        case .notFound(let reasons):
            throw FailoverProbeError(
                "no read-write server at \(options.primary.redacted): " + reasons.joined(separator: "; "))
        }
        do {
            try await body(connection)
        } catch {
            try? await connection.close()
            throw error
        }
        try? await connection.close()
    }

    /// Runs `body` on the repo database; nothing when there is none (`--init` without it).
    private func withRepo(_ body: (PostgresConnection) async throws -> Void) async throws {
        guard let repoDSN = options.repo else { return }
        let connection: PostgresConnection
        do {
            connection = try await repo.connect(repoDSN.endpoints[0], id: 2)
        } catch let error as QueryProbeFatalError {
            throw FailoverProbeError("repo: \(error.description)")
        } catch {
            throw FailoverProbeError("cannot reach the repo database \(repoDSN.redacted): \(describe(error))")
        }
        do {
            try await body(connection)
        } catch {
            try? await connection.close()
            throw error
        }
        try? await connection.close()
    }

    private func check(_ outcome: StatementOutcome, _ what: String) throws {
        switch outcome {
        case .answered: return
        case .rejected(let reason, _), .noAnswer(let reason), .notSent(let reason): throw FailoverProbeError("\(what): \(reason)")
        }
    }

    // MARK: running

    enum Message: Sendable {
        case event(worker: Int, WorkerEvent)
        case entry(LedgerEntry)
        case resolved(worker: Int, seq: Int64, Resolution)
        case operation(worker: Int, kind: OperationKind, status: OperationStatus?, latencyNanos: Int64?, failure: String?)
        case notice(String)
        case tick
        case finished(WorkerResult)
        case repoDrained(unwritten: Int, reason: String?)
    }

    struct WorkerResult: Sendable {
        var worker: Int
        var model: WorkerModel
        var pending: PlannedOperation?
    }

    /// The run's figures, before the final check turns them into a summary.
    struct Collected: Sendable {
        var timeline = FailoverTimeline()
        var ledger: [Int: [LedgerEntry]] = [:]
        var indeterminatePositions: [Int: [Int64: Int]] = [:]
        var acked = 0
        var failed = 0
        var indeterminate = 0
        var results: [Int: WorkerResult] = [:]

        mutating func add(_ entry: LedgerEntry) {
            if entry.status == .indeterminate {
                indeterminatePositions[entry.worker, default: [:]][entry.operation.seq] = ledger[entry.worker, default: []].count
            }
            ledger[entry.worker, default: []].append(entry)
        }

        mutating func resolve(worker: Int, seq: Int64, _ resolution: Resolution) {
            guard let position = indeterminatePositions[worker]?[seq] else { return }
            ledger[worker]?[position].resolution = resolution
        }
    }

    /// Runs the load, then the final check; `onEvent` sees progress, notices and every
    /// operation. Cancellation ends the load early; the final check still runs.
    public func run(onEvent: @escaping @Sendable (FailoverProbeEvent) -> Void) async throws -> FailoverSummary {
        guard options.repo != nil else { throw FailoverProbeError("--repo-dsn is required: the ledger of acknowledged operations is kept there") }
        try await initialize()
        try await withPrimary { connection in
            let tables = (1...options.workers).map(Self.table).joined(separator: ", ")
            try await check(primary.run("TRUNCATE \(unescaped: tables)", on: connection), "emptying the tables")
        }
        // Cancelling (Ctrl-C) ends the load only: the final check runs in a task of its own.
        let load = Task { await self.load(onEvent: onEvent) }
        let loaded = await withTaskCancellationHandler { await load.value } onCancel: { load.cancel() }
        return await Task {
            await finalCheck(loaded.collected, endSeconds: loaded.endSeconds, onEvent: onEvent)
        }.value
    }

    private func load(onEvent: @escaping @Sendable (FailoverProbeEvent) -> Void) async -> (collected: Collected, endSeconds: Double) {
        let start = ContinuousClock.now
        let clock = RunClock(start: start)
        let measureFrom = start + .nanoseconds(options.warmupNanos)
        let deadline = measureFrom + .nanoseconds(options.durationNanos)
        let (messages, sink) = AsyncStream<Message>.makeStream()
        let recorder = RepoRecorder(connector: repo, runID: runID, asyncMode: options.asyncRepo)
        var collected = Collected()
        var lastTick = (at: 0.0, acked: 0)
        await withTaskGroup(of: Void.self) { group in
            if options.asyncRepo {
                group.addTask {
                    let (unwritten, reason) = await recorder.drainQueue(giveUpNanos: 30_000_000_000)
                    sink.yield(.repoDrained(unwritten: unwritten, reason: reason))
                }
            }
            for worker in 1...options.workers {
                group.addTask {
                    let result = await runWorker(
                        worker, clock: clock, measureFrom: measureFrom, deadline: deadline, recorder: recorder, sink: sink)
                    sink.yield(.finished(result))
                }
            }
            let ticker = Task {
                var next = ContinuousClock.now
                while !Task.isCancelled {
                    // The queue is written every 50 ms; progress every report interval.
                    try? await Task.sleep(for: .milliseconds(50))
                    recorder.queue?.yield(.flush)
                    if ContinuousClock.now >= next + .nanoseconds(options.reportIntervalNanos) {
                        next = next + .nanoseconds(options.reportIntervalNanos)
                        sink.yield(.tick)
                    }
                }
            }
            var running = options.workers
            var repoPending = options.asyncRepo
            for await message in messages {
                switch message {
                case .event(let worker, let event):
                    let wasDown = collected.timeline.workersDown
                    collected.timeline.record(worker: worker, event)
                    if case .acked = event, wasDown > 0, collected.timeline.workersDown == 0,
                        let last = collected.timeline.failovers.last, let rto = last.rto
                    {
                        onEvent(
                            .notice(
                                "pgprobe failover: writes resumed at \(Human.duration(seconds: clock.seconds())): RTO "
                                    + Human.duration(seconds: rto) + " (worst worker)"))
                    }
                case .entry(let entry):
                    collected.add(entry)
                case .resolved(let worker, let seq, let resolution):
                    collected.resolve(worker: worker, seq: seq, resolution)
                case .operation(let worker, let kind, let status, let latency, let failure):
                    switch status {
                    case .acked?, .missing?: collected.acked += 1
                    case .indeterminate?: collected.indeterminate += 1
                    case nil: collected.failed += 1
                    }
                    onEvent(.operation(worker: worker, kind: kind, status: status, latencyNanos: latency))
                    if let failure { onEvent(.notice("pgprobe failover: worker \(worker): \(failure)")) }
                case .notice(let line):
                    onEvent(.notice(line))
                case .tick:
                    let now = clock.seconds()
                    let rate = now > lastTick.at ? Double(collected.acked - lastTick.acked) / (now - lastTick.at) : nil
                    lastTick = (now, collected.acked)
                    onEvent(
                        .progress(
                            "pgprobe failover: \(Human.fixed(now, decimals: 1)) s: \(Human.grouped(Int64(collected.acked))) acked ("
                                + Human.rate(rate, unit: "operations") + "), \(collected.failed) failed, "
                                + "\(collected.indeterminate) indeterminate, workers down \(collected.timeline.workersDown)/\(options.workers)"
                        ))
                case .finished(let result):
                    collected.results[result.worker] = result
                    running -= 1
                    if running == 0 { recorder.finish() }
                case .repoDrained(let unwritten, let reason):
                    repoPending = false
                    if unwritten > 0 {
                        onEvent(.notice("pgprobe failover: \(unwritten) records are not in the repo database: \(reason ?? "unknown")"))
                    }
                }
                if running == 0, !repoPending { break }
            }
            ticker.cancel()
        }
        return (collected, clock.seconds())
    }

    /// One worker: its own connection, its table, its model; retries with a bounded pause.
    private func runWorker(
        _ worker: Int, clock: RunClock, measureFrom: ContinuousClock.Instant, deadline: ContinuousClock.Instant,
        recorder: RepoRecorder, sink: AsyncStream<Message>.Continuation
    ) async -> WorkerResult {
        var model = WorkerModel(worker: worker)
        var rng = SystemRandomNumberGenerator()
        var connection: PostgresConnection?
        var pending: PlannedOperation?
        var preferred = 0
        var connectionID = worker << 20
        var lastFailure: String?
        let table = Self.table(worker)
        var repoWriter = recorder.writer(worker: worker)
        func pause() async { try? await Task.sleep(for: .nanoseconds(options.retryIntervalNanos)) }
        func record(_ record: RepoRecord) async {
            let failure = await recorder.record(
                record, with: &repoWriter, keepTrying: { !Task.isCancelled && ContinuousClock.now < deadline }, pause: pause)
            if let failure { sink.yield(.notice("pgprobe failover: worker \(worker): \(failure)")) }
        }
        func drop() async {
            if let connection { try? await connection.close() }
            connection = nil
        }
        // Says why a worker stopped writing once per outage, not once per attempt.
        func failed(_ reason: String) -> String? {
            defer { lastFailure = reason }
            return lastFailure == nil ? "write failed at \(Human.duration(seconds: clock.seconds())): \(reason)" : nil
        }
        while !Task.isCancelled, ContinuousClock.now < deadline {
            if connection == nil || connection?.isClosed == true {
                await drop()
                connectionID += 1
                let search: ReadWriteSearch
                do {
                    search = try await primary.findReadWrite(startingAt: preferred, id: connectionID) { readWrite in
                        sink.yield(.event(worker: worker, .connected(at: clock.seconds(), readWrite: readWrite)))
                    }
                } catch {
                    search = .notFound(reasons: [UserMessage.describe(error)])
                }
                switch search {
                case .found(let found, let index):
                    connection = found
                    preferred = index
                case .notFound(let reasons):
                    sink.yield(.event(worker: worker, .failed(at: clock.seconds())))
                    if let line = failed("no read-write server: " + reasons.joined(separator: "; ")) {
                        sink.yield(.notice("pgprobe failover: worker \(worker): \(line)"))
                    }
                    await pause()
                    continue
                }
            }
            guard let current = connection else { continue }
            if let operation = pending {
                switch await primary.run("SELECT version FROM \(unescaped: table) WHERE id = \(operation.rowID)", on: current) {
                case .answered(let versions):
                    let resolution = model.resolve(operation, version: versions.first ?? nil)
                    pending = nil
                    sink.yield(.resolved(worker: worker, seq: operation.seq, resolution))
                    await record(.resolution(worker: worker, seq: operation.seq, resolution))
                case .rejected, .noAnswer, .notSent:
                    await drop()
                    sink.yield(.event(worker: worker, .failed(at: clock.seconds())))
                    await pause()
                    continue
                }
            }
            let operation = model.plan(mix: options.mix, insertOnly: ContinuousClock.now < measureFrom, using: &rng)
            let sentAt = clock.seconds()
            let sent = ContinuousClock.now
            let outcome = await primary.run(Self.statement(operation, table: table), on: current)
            let latency = (ContinuousClock.now - sent).nanoseconds
            switch outcome {
            case .answered(let rows):
                let at = clock.seconds()
                let status = model.acknowledged(operation, rowsAffected: rows.count)
                sink.yield(.event(worker: worker, .acked(at: at)))
                let entry = LedgerEntry(worker: worker, operation: operation, status: status, atSeconds: at)
                sink.yield(.entry(entry))
                sink.yield(.operation(worker: worker, kind: operation.kind, status: status, latencyNanos: latency, failure: nil))
                lastFailure = nil
                await record(.entry(entry))
            case .rejected(let reason, _), .notSent(let reason):
                // Nothing applied; reconnect (the server may be a demoted primary now).
                await drop()
                sink.yield(.event(worker: worker, .failed(at: clock.seconds())))
                sink.yield(.operation(worker: worker, kind: operation.kind, status: nil, latencyNanos: nil, failure: failed(reason)))
                await pause()
            case .noAnswer(let reason):
                await drop()
                let entry = LedgerEntry(worker: worker, operation: operation, status: .indeterminate, atSeconds: sentAt)
                pending = operation
                sink.yield(.event(worker: worker, .failed(at: clock.seconds())))
                sink.yield(.entry(entry))
                sink.yield(
                    .operation(
                        worker: worker, kind: operation.kind, status: .indeterminate, latencyNanos: nil,
                        failure: failed(reason + " (outcome unknown: resolved later)")))
                await record(.entry(entry))
                await pause()
            }
        }
        await drop()
        await repoWriter.close()
        return WorkerResult(worker: worker, model: model, pending: pending)
    }

    static func statement(_ operation: PlannedOperation, table: String) -> PostgresQuery {
        let id = operation.rowID
        let version = operation.seq
        let payload = FailoverRows.payload(id: id, version: version)
        switch operation.kind {
        case .insert:
            return "INSERT INTO \(unescaped: table) (id, version, t, last_update) VALUES (\(id), \(version), \(payload), now()) RETURNING id"
        case .update:
            return "UPDATE \(unescaped: table) SET version = \(version), t = \(payload), last_update = now() WHERE id = \(id) RETURNING id"
        case .delete:
            return "DELETE FROM \(unescaped: table) WHERE id = \(id) RETURNING id"
        }
    }

    // MARK: after the run

    /// Finds the primary again, resolves what is still indeterminate, and compares every
    /// table with the ledger.
    private func finalCheck(
        _ collected: Collected, endSeconds: Double, onEvent: (FailoverProbeEvent) -> Void
    ) async -> FailoverSummary {
        var collected = collected
        if options.validationDelayNanos > 0 { try? await Task.sleep(for: .nanoseconds(options.validationDelayNanos)) }
        let failovers = collected.timeline.failovers
        var summary = FailoverSummary(
            duration_s: endSeconds, operations_acked: collected.acked, operations_failed: collected.failed,
            operations_per_s: endSeconds > 0 ? Double(collected.acked) / endSeconds : nil,
            availability_percent: FailoverSummary.availability(failovers: failovers, endSeconds: endSeconds, measuredSeconds: endSeconds),
            failovers: failovers.map(FailoverJSON.init), rpo: nil, indeterminate: IndeterminateCounts(), validation: nil)
        var repoWriter = RepoWriter(connector: repo, runID: runID, id: 98)
        let giveUp = ContinuousClock.now + .nanoseconds(options.finalCheckTimeoutNanos)
        var connection: PostgresConnection?
        var lastReasons: [String] = []
        while connection == nil, ContinuousClock.now < giveUp {
            if case .found(let found, _) = try? await primary.findReadWrite(startingAt: 0, id: 3, onLogin: { _ in }) {
                connection = found
            } else {
                lastReasons = ["no read-write server"]
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        guard let connection else {
            onEvent(.notice("pgprobe failover: final check: \(lastReasons.joined(separator: "; ")) within "
                + Human.duration(seconds: Double(options.finalCheckTimeoutNanos) / 1e9) + ": RPO not measured"))
            summary.indeterminate = IndeterminateCounts(entries: collected.ledger.values.flatMap { $0 })
            return summary
        }
        var loss = DataLoss()
        var validation: [TableValidation] = []
        var complete = true
        for worker in 1...options.workers {
            let table = Self.table(worker)
            guard case .answered = await primary.run("SELECT 1::int8", on: connection),
                let actual = await rows(of: table, on: connection)
            else {
                complete = false
                continue
            }
            var result = collected.results[worker] ?? WorkerResult(worker: worker, model: WorkerModel(worker: worker))
            if let operation = result.pending {
                let resolution = result.model.resolve(operation, version: actual[operation.rowID])
                collected.resolve(worker: worker, seq: operation.seq, resolution)
                if let failure = await repoWriter.write([.resolution(worker: worker, seq: operation.seq, resolution)]) {
                    onEvent(.notice("pgprobe failover: \(failure)"))
                }
            }
            loss.add(entries: collected.ledger[worker] ?? [], actual: actual)
            if options.fullValidation {
                validation.append(await validate(table, expected: result.model.rows, actual: actual, on: connection))
            }
        }
        summary.indeterminate = IndeterminateCounts(entries: collected.ledger.values.flatMap { $0 })
        if complete {
            summary.rpo = RPOJSON(loss, outageStarts: failovers.map(\.startedAt), endSeconds: endSeconds)
        } else {
            onEvent(.notice("pgprobe failover: final check: could not read every table: RPO not measured"))
        }
        if options.fullValidation { summary.validation = validation }
        await repoWriter.close()
        try? await connection.close()
        return summary
    }

    /// id → version of every row.
    private func rows(of table: String, on connection: PostgresConnection) async -> [Int64: Int64]? {
        do {
            let result = try await connection.query("SELECT id, version FROM \(unescaped: table)", logger: primary.logger)
            var rows: [Int64: Int64] = [:]
            for try await (id, version) in result.decode((Int64, Int64).self) { rows[id] = version }
            return rows
        } catch {
            return nil
        }
    }

    private func validate(
        _ table: String, expected: [Int64: Int64], actual: [Int64: Int64], on connection: PostgresConnection
    ) async -> TableValidation {
        var md5Match = false
        do {
            let text = FailoverRows.validationText(expected)
            let result = try await connection.query(
                """
                SELECT md5(coalesce(string_agg(id::text || ':' || version::text || ':' || t, ',' ORDER BY id), '')) = md5(\(text))
                FROM \(unescaped: table)
                """, logger: primary.logger)
            for try await match in result.decode(Bool.self) { md5Match = match }
        } catch {
            md5Match = false
        }
        return TableValidation(
            table: table, count: actual.count, expected_count: expected.count, md5_match: md5Match,
            first_differing_ids: FailoverRows.differingIDs(expected: expected, actual: actual))
    }
}

/// Seconds since the run started, on the monotonic clock.
struct RunClock: Sendable {
    let start: ContinuousClock.Instant
    func seconds(at instant: ContinuousClock.Instant = .now) -> Double { Double((instant - start).nanoseconds) / 1e9 }
}
