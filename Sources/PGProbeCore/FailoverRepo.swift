import Foundation
import PostgresNIO
import CommandLineKit

/// One line for the repo database: an operation, or how an indeterminate one resolved.
enum RepoRecord: Sendable {
    case entry(LedgerEntry)
    case resolution(worker: Int, seq: Int64, Resolution)
}

/// Writes records to the repo database on its own connection, reconnecting as needed.
/// Owned by one task: a worker (synchronous mode) or the queue's writer (`--async-repo-mode`).
struct RepoWriter {
    let connector: FailoverConnector
    let runID: String
    private var connection: PostgresConnection?
    private var connectionID: Int

    init(connector: FailoverConnector, runID: String, id: Int) {
        self.connector = connector
        self.runID = runID
        connectionID = id << 20
    }

    /// Writes `records` in order; nil, or why it failed (the caller retries).
    mutating func write(_ records: [RepoRecord]) async -> String? {
        if connection == nil || connection?.isClosed == true {
            connectionID += 1
            do {
                connection = try await connector.connect(connector.dsn.endpoints[0], id: connectionID)
            } catch {
                return "cannot reach the repo database: \(describe(error))"
            }
        }
        guard let connection else { return "no repo connection" }
        var index = records.startIndex
        while index < records.endIndex {
            // Consecutive entries go in one statement; a resolution is an update of its own.
            let query: PostgresQuery
            if case .resolution(let worker, let seq, let resolution) = records[index] {
                query = """
                    UPDATE \(unescaped: FailoverProbe.repoTable) SET resolution = \(resolution.rawValue)
                    WHERE run_id = \(runID) AND worker = \(Int64(worker)) AND seq = \(seq) RETURNING seq
                    """
                index += 1
            } else {
                var entries: [LedgerEntry] = []
                while index < records.endIndex, case .entry(let entry) = records[index] {
                    entries.append(entry)
                    index += 1
                }
                query = Self.insert(entries, runID: runID)
            }
            switch await connector.run(query, on: connection) {
            case .answered: continue
            case .rejected(let reason, _), .noAnswer(let reason), .notSent(let reason):
                try? await connection.close()
                self.connection = nil
                return "repo: \(reason)"
            }
        }
        return nil
    }

    mutating func close() async {
        if let connection { try? await connection.close() }
        connection = nil
    }

    static func insert(_ entries: [LedgerEntry], runID: String) -> PostgresQuery {
        let workers = entries.map { Int64($0.worker) }
        let seqs = entries.map(\.operation.seq)
        let kinds = entries.map(\.operation.kind.rawValue)
        let rowIDs = entries.map(\.operation.rowID)
        let statuses = entries.map(\.status.rawValue)
        let resolutions = entries.map { $0.resolution?.rawValue ?? "" }
        let times = entries.map(\.atSeconds)
        return """
            INSERT INTO \(unescaped: FailoverProbe.repoTable) (run_id, worker, seq, kind, row_id, status, resolution, at_s)
            SELECT \(runID), w, s, k, r, st, NULLIF(res, ''), a
            FROM unnest(\(workers)::int8[], \(seqs)::int8[], \(kinds)::text[], \(rowIDs)::int8[], \(statuses)::text[],
                        \(resolutions)::text[], \(times)::float8[]) AS u(w, s, k, r, st, res, a)
            ON CONFLICT (run_id, worker, seq) DO NOTHING
            """
    }
}

/// Records the ledger in the repo database: before the worker's next operation (default), or
/// through one ordered queue with a writer of its own (`--async-repo-mode`).
struct RepoRecorder: Sendable {
    enum QueueItem: Sendable {
        case record(RepoRecord)
        case flush
    }

    let connector: FailoverConnector
    let runID: String
    /// The ordered queue (async mode only).
    let queue: AsyncStream<QueueItem>.Continuation?
    private let stream: AsyncStream<QueueItem>?

    init(connector: FailoverConnector, runID: String, asyncMode: Bool) {
        self.connector = connector
        self.runID = runID
        if asyncMode {
            let (stream, queue) = AsyncStream<QueueItem>.makeStream()
            self.stream = stream
            self.queue = queue
        } else {
            stream = nil
            queue = nil
        }
    }

    /// A writer for one worker (synchronous mode).
    func writer(worker: Int) -> RepoWriter { RepoWriter(connector: connector, runID: runID, id: 100 + worker) }

    /// Synchronous mode: written before this returns (retrying with `pause` while the run
    /// lasts); async mode: queued. Returns a notice when a record could not be written.
    func record(_ record: RepoRecord, with writer: inout RepoWriter, keepTrying: () -> Bool, pause: () async -> Void) async -> String? {
        if let queue {
            queue.yield(.record(record))
            return nil
        }
        while true {
            guard let failure = await writer.write([record]) else { return nil }
            guard keepTrying() else { return failure + " (this operation is not in the repo)" }
            await pause()
        }
    }

    /// The queue's writer: batches up to 500 records between flushes, in order; ends when the
    /// queue is finished and written (or given up after `giveUpNanos` of failures at the end).
    /// Returns how many records could not be written and the last reason.
    func drainQueue(giveUpNanos: Int64) async -> (unwritten: Int, reason: String?) {
        guard let stream else { return (0, nil) }
        var writer = RepoWriter(connector: connector, runID: runID, id: 99)
        var batch: [RepoRecord] = []
        var lastReason: String?
        func flush() async {
            guard !batch.isEmpty else { return }
            if let failure = await writer.write(batch) { lastReason = failure } else { batch.removeAll(keepingCapacity: true) }
        }
        for await item in stream {
            switch item {
            case .record(let record):
                batch.append(record)
                if batch.count >= 500 { await flush() }
            case .flush:
                await flush()
            }
        }
        let giveUp = ContinuousClock.now + .nanoseconds(giveUpNanos)
        while !batch.isEmpty, ContinuousClock.now < giveUp {
            await flush()
            // Interrupted: one last try, no waiting.
            if !batch.isEmpty, Task.isCancelled { break }
            if !batch.isEmpty { try? await Task.sleep(for: .milliseconds(100)) }
        }
        await writer.close()
        return (batch.count, batch.isEmpty ? nil : lastReason)
    }

    func finish() { queue?.finish() }
}
