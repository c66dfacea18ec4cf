import CommandLineKit
import Foundation
import LatencyStats
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Records one run of a tool: the run row when it starts, each report interval as the tool hands
/// it over, the summary when it ends. The measuring code only calls `record(_:)`, which posts
/// the interval to the recorder's own event loop and returns: encoding histograms and writing
/// happen there and on sqlite-nio's threads, batched (one transaction per second at most), so a
/// slow or broken store never holds up a measurement. Nothing is lost quietly: a store that
/// cannot be opened or written gives one line, and the run goes to a fresh local file instead.
///
/// All state lives in `state`, touched only on `loop`, except `outcomes` (under its lock).
public final class RunRecorder: Sendable {
    public let runID: String
    /// Where the run is written (the local file for a collector target).
    public let localPath: String
    public let target: StoreTarget
    private let group: MultiThreadedEventLoopGroup
    private let state: NIOLoopBoundBox<State>
    /// `record(latencyNanos:)`'s one-second intervals, cut by whichever thread records.
    private let outcomes = NIOLockedValueBox(IntervalClock())
    private let opened: EventLoopPromise<Void>
    private let warn: @Sendable (String) -> Void

    /// How often pending intervals are written at most (and always at the end).
    static let flushSeconds: Int64 = 1
    static let flushCount = 64

    struct State {
        var backend: (any ResultsBackend)?
        var run: StoredRun
        var pending: [ReportInterval] = []
        /// Encoded but not written: after a failure, for the fall-back file.
        var unwritten: [StoredInterval] = []
        var nextSeq = 0
        var writing = false
        var flushScheduled = false
        var lastFlush = NIODeadline.now()
        /// Set once the store failed: the rest of the run goes to a fallback file at the end.
        var failed = false
        var finishing: EventLoopPromise<Void>?
    }

    /// Starts recording `run` (its id, tool, tester, tags, configuration) to `target`; the store
    /// opens in the background (`ready` completes when it did, or when the fall-back did).
    /// - Parameter warn: one line per problem (the tool prefixes its name and prints to stderr).
    public init(run: StoredRun, target: StoreTarget, warn: @escaping @Sendable (String) -> Void) {
        runID = run.id
        self.target = target
        self.warn = warn
        switch target {
        case .sqlite(let path): localPath = path
        case .collector: localPath = StoreTarget.defaultPath
        }
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        state = .makeBoxSendingValue(State(run: run), eventLoop: loop)
        opened = loop.makePromise(of: Void.self)
        let (path, state, opened) = (localPath, state, opened)
        loop.makeFutureWithTask { () async throws -> any ResultsBackend in
            let store = try await SQLiteResults.open(path: path)
            try await store.begin(run)
            return store
        }
        .flatMapError { error in
            warn(Self.problemLine(error, path: path, fallback: Self.fallbackPath(runID: run.id)))
            return loop.makeFutureWithTask { try await Self.openFallback(run) }
        }
        .whenComplete { result in
            switch result {
            case .success(let backend): state.value.backend = backend
            case .failure:
                warn("no results store could be opened (not even \(Self.fallbackPath(runID: run.id))); this run is not stored")
            }
            opened.succeed()
            self.flushIfDue()
        }
    }

    /// Completes once the store is open (or could not be): wait for it before measuring so any
    /// line about the store comes first.
    public var ready: EventLoopFuture<Void> { opened.futureResult }

    /// Hands over one report interval. Returns at once; callable from any thread.
    public func record(_ interval: ReportInterval) {
        let state = state
        state.eventLoop.execute {
            state.value.pending.append(interval)
            self.flushIfDue()
        }
    }

    /// Hands over one outcome of a tool without report intervals of its own (a query, a write):
    /// a latency, or nil for a failure. They are cut into one-second intervals on the recorder's
    /// loop. Returns at once; callable from any thread.
    public func record(latencyNanos: Int64?, atNanos: Int64 = IntervalClock.wallNanos()) {
        // Counted in place; only a closed interval goes to the loop. A message per outcome woke
        // the recorder's thread for every query and slowed back-to-back queries.
        guard let closed = outcomes.withLockedValue({ $0.record(latencyNanos: latencyNanos, atNanos: atNanos) }) else { return }
        record(closed)
    }

    /// `record(_:)` as a closure, for the tools' `onInterval` hooks.
    public var intervalSink: @Sendable (ReportInterval) -> Void { { self.record($0) } }

    /// Writes what is pending, then the end of the run with its summary; for a collector target
    /// then uploads it (`CollectorHandoff`). Completes with the lines to print: where the run
    /// is (stdout), and problems (stderr). Never fails.
    public func finish(summary: [String: Any]?, config: [String: Any]? = nil, endedAt: Date = Date())
        -> EventLoopFuture<RecordOutcome>
    {
        let summaryText = summary.map { JSONText.text($0) }
        let configText = config.map { JSONText.text($0) }
        let state = state
        let loop = state.eventLoop
        return opened.futureResult.flatMap {
            if let open = self.outcomes.withLockedValue({ $0.finish(atNanos: Self.nanos(endedAt)) }) {
                state.value.pending.append(open)
            }
            state.value.run.endedAt = endedAt
            state.value.run.summary = summaryText
            if let configText { state.value.run.config = configText }
            let drained = loop.makePromise(of: Void.self)
            state.value.finishing = drained
            self.flushIfDue()
            return drained.futureResult
        }
        .flatMap { () -> EventLoopFuture<RecordOutcome> in
            let run = state.value.run
            guard let backend = state.value.backend else {
                return loop.makeSucceededFuture(RecordOutcome(stored: nil, problems: []))
            }
            let failed = state.value.failed
            let leftover = state.value.unwritten + self.takePending()
            return loop.makeFutureWithTask { () async -> RecordOutcome in
                await self.complete(run: run, backend: backend, failedBefore: failed, leftover: leftover)
            }
        }
        .always { _ in
            // The recorder's thread ends once the outcome is out.
            let group = self.group
            DispatchQueue.global().async { try? group.syncShutdownGracefully() }
        }
    }

    /// Blocking form of `finish` for synchronous commands (vtp-sender, vtp-lab); never on a loop.
    public func finishAndWait(summary: [String: Any]?, config: [String: Any]? = nil) -> RecordOutcome {
        (try? finish(summary: summary, config: config).wait()) ?? RecordOutcome(stored: nil, problems: [])
    }

    // MARK: on the loop

    private func flushIfDue() {
        let state = state
        guard !state.value.writing, let backend = state.value.backend else { return }
        if state.value.failed {
            state.value.unwritten += takePending()
        }
        if state.value.pending.isEmpty {
            if let finishing = state.value.finishing {
                state.value.finishing = nil
                finishing.succeed()
            }
            return
        }
        let due = state.value.lastFlush + .seconds(Self.flushSeconds)
        let finishing = state.value.finishing != nil
        guard finishing || state.value.pending.count >= Self.flushCount || NIODeadline.now() >= due else {
            // Nothing else may come for a while: write these by the deadline anyway.
            if !state.value.flushScheduled {
                state.value.flushScheduled = true
                state.eventLoop.assumeIsolated().scheduleTask(deadline: due) {
                    state.value.flushScheduled = false
                    self.flushIfDue()
                }
            }
            return
        }
        let batch = takePending()
        state.value.writing = true
        state.value.lastFlush = .now()
        state.eventLoop.makeFutureWithTask { try await backend.append(batch) }
            .whenComplete { result in
                state.value.writing = false
                if case .failure(let error) = result {
                    state.value.failed = true
                    state.value.unwritten = batch + state.value.unwritten
                    self.warn(
                        "results store \(backend.name): \(UserMessage.describe(error)); the run goes on and is kept in "
                            + Self.fallbackPath(runID: self.runID) + " at the end")
                }
                self.flushIfDue()
            }
    }

    /// The pending intervals, numbered and encoded (here, off the measuring loops).
    private func takePending() -> [StoredInterval] {
        let pending = state.value.pending
        state.value.pending = []
        let first = state.value.nextSeq
        state.value.nextSeq += pending.count
        return pending.enumerated().map { StoredInterval($0.element, runID: runID, seq: first + $0.offset) }
    }

    // MARK: off the loop

    private func complete(run: StoredRun, backend: any ResultsBackend, failedBefore: Bool, leftover: [StoredInterval])
        async -> RecordOutcome
    {
        var problems: [String] = []
        var storedIn = backend.name
        var failed = failedBefore
        if !failed {
            do {
                try await backend.append(leftover)
                try await backend.finish(run)
            } catch {
                failed = true
                problems.append("results store \(backend.name): \(UserMessage.describe(error))")
            }
        }
        await backend.close()
        if failed {
            let path = Self.fallbackPath(runID: run.id)
            do {
                let fallback = try await SQLiteResults.open(path: path)
                _ = try await fallback.importRun(run, intervals: leftover)
                await fallback.close()
                storedIn = path
                problems.append(
                    "run \(run.id) kept in \(path) (intervals before the failure are in \(backend.name)); "
                        + "merge it later with: vtp-report push --store \(path) --to \(backend.name)")
            } catch {
                problems.append("run \(run.id) could not be stored: \(UserMessage.describe(error))")
                return RecordOutcome(stored: nil, problems: problems)
            }
        }
        if case .collector(let url) = target, !failed {
            let upload = await CollectorHandoff.push(runID: run.id, from: storedIn, to: url)
            if let problem = upload.problem {
                problems.append(
                    "\(problem); run \(run.id) kept in \(storedIn); upload it later with: vtp-report push --store \(storedIn) --to \(url.redacted)"
                )
                return RecordOutcome(stored: "run \(run.id) stored in \(storedIn)", problems: problems)
            }
            return RecordOutcome(stored: "run \(run.id) stored in \(storedIn) and \(url.redacted)", problems: problems)
        }
        return RecordOutcome(stored: "run \(run.id) stored in \(storedIn)", problems: problems)
    }

    static func openFallback(_ run: StoredRun) async throws -> any ResultsBackend {
        let store = try await SQLiteResults.open(path: fallbackPath(runID: run.id))
        try await store.begin(run)
        return store
    }

    /// Nanoseconds since 1970 (dates far outside ±292 years clamp).
    static func nanos(_ date: Date) -> Int64 {
        let nanos = (date.timeIntervalSince1970 * 1e9).rounded()
        guard nanos.isFinite else { return 0 }
        return nanos >= 9.2e18 ? .max : nanos <= -9.2e18 ? .min : Int64(nanos)
    }

    /// A file of this run alone, in the current directory: `vtpbench-run-<id>.sqlite`.
    public static func fallbackPath(runID: String) -> String { "./vtpbench-run-\(runID).sqlite" }

    static func problemLine(_ error: any Error, path: String, fallback: String) -> String {
        "results store: \(UserMessage.describe(error)); this run is kept in \(fallback) instead"
    }

}

/// What became of a recorded run.
public struct RecordOutcome: Sendable, Equatable {
    /// `run <id> stored in <where>` (nil: not stored).
    public var stored: String?
    /// One line each.
    public var problems: [String]
}

extension RecordOutcome {
    /// Where the run is, on stdout; each problem on stderr; prefixed with the tool's name.
    /// Problems always go to stderr; `quiet` leaves out the line saying where the run is.
    public func print(tool: String, quiet: Bool = false) {
        for problem in problems { FileHandle.standardError.write(Data("\(tool): \(problem)\n".utf8)) }
        if let stored, !quiet {
            Swift.print("\(tool): \(stored)")
            fflush(nil)
        }
    }
}
