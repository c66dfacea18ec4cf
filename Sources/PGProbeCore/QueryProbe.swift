import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization
import CommandLineKit

/// One timed query (or a failed attempt at one).
public struct QueryOutcome: Sendable {
    public var index: Int
    /// Send → result complete on the monotonic clock; nil when the attempt failed.
    public var latencyNanos: Int64?
    /// Why the attempt failed, in words a user can act on.
    public var failure: String?
    /// The SQL text actually sent (crosscheck adds a unique comment).
    public var sql: String
    public var succeeded: Bool { latencyNanos != nil }
}

/// Failures after which retrying cannot help (wrong password, unknown database…).
public struct QueryProbeFatalError: Error, CustomStringConvertible {
    public var description: String
}

public struct QueryProbeOptions: Sendable {
    public var dsn: DSN
    public var query: String
    /// Attempts in all, over every client (with `durationNanos`, whichever ends first).
    public var count: Int
    /// Each client's pause between the end of one query and the start of the next (without `ratePerSecond`).
    public var intervalNanos: Int64
    /// A query (or connection attempt) slower than this is abandoned and counted as failed.
    public var timeoutNanos: Int64
    /// Concurrent clients, each with its own connection.
    public var clients: Int
    /// Queries started per second over all clients, on a fixed schedule (query i at i/rate);
    /// a client still busy at its next slot starts late. nil: paced by `intervalNanos`.
    public var ratePerSecond: Double?
    /// No query starts after this long from the start.
    public var durationNanos: Int64?
    /// Builds each query's text from its index; crosscheck uses it to tag queries.
    public var sqlForIndex: @Sendable (Int, String) -> String

    public init(
        dsn: DSN, query: String = "SELECT 1", count: Int = 10, intervalNanos: Int64 = 100_000_000,
        timeoutNanos: Int64 = 10_000_000_000, clients: Int = 1, ratePerSecond: Double? = nil,
        durationNanos: Int64? = nil, sqlForIndex: @escaping @Sendable (Int, String) -> String = { _, sql in sql }
    ) {
        self.dsn = dsn
        self.query = query
        self.count = count
        self.intervalNanos = intervalNanos
        self.timeoutNanos = timeoutNanos
        self.clients = clients
        self.ratePerSecond = ratePerSecond
        self.durationNanos = durationNanos
        self.sqlForIndex = sqlForIndex
    }
}

/// Which query comes next, shared by the clients: indices in order, each once, until the count
/// or the duration is reached, with their start times when a rate is set.
final class QuerySchedule: Sendable {
    private let next = Atomic<Int>(0)
    let count: Int
    let start: ContinuousClock.Instant
    let deadline: ContinuousClock.Instant?
    let ratePerSecond: Double?

    init(options: QueryProbeOptions) {
        let start = ContinuousClock.now
        self.start = start
        count = max(options.count, 0)
        deadline = options.durationNanos.map { start + .nanoseconds(max($0, 0)) }
        ratePerSecond = options.ratePerSecond.flatMap { $0.isFinite && $0 > 0 ? $0 : nil }
    }

    /// The next query's index and, with a rate, when it is due; nil when the run is over.
    func claim() -> (index: Int, due: ContinuousClock.Instant?)? {
        let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
        guard index < count else { return nil }
        var due: ContinuousClock.Instant?
        if let ratePerSecond {
            // Checked before converting: a slow rate and a large index must not overflow.
            let offset = Double(index) / ratePerSecond
            guard offset.isFinite, offset <= 7 * 24 * 3600 else { return nil }
            due = start + .nanoseconds(Int64((offset * 1e9).rounded()))
        }
        if let deadline, (due ?? .now) >= deadline { return nil }
        return (index, due)
    }
}

/// Times queries end to end over postgres-nio, reconnecting after connection failures.
///
/// Each attempt is one slot of `count`: a refused connection or a server restart costs the
/// slot (counted as failed, with the reason) and the next slot reconnects, so a probe run
/// across a restart shows exactly how many queries the outage cost. With several clients, each
/// runs its own connection in a child task and hands its outcomes to `run`'s task by message.
public struct QueryProbe: Sendable {
    public var options: QueryProbeOptions
    private let logger: Logger

    public init(options: QueryProbeOptions) {
        self.options = options
        var logger = Logger(label: "pgprobe")
        logger.logLevel = .critical  // postgres-nio logs connection errors we report ourselves
        self.logger = logger
    }

    enum ClientMessage: Sendable {
        case outcome(QueryOutcome)
        case fatal(QueryProbeFatalError)
        case finished
    }

    /// Runs the probe; `onOutcome` sees every attempt as it completes, one at a time, on this
    /// task. Stops early on cancellation. Throws `QueryProbeFatalError` when the server rejects
    /// the login (retrying cannot help).
    public func run(onOutcome: (QueryOutcome) async -> Void) async throws {
        let schedule = QuerySchedule(options: options)
        let clients = max(options.clients, 1)
        if clients == 1 {
            // A lone client's outcomes are handled between its queries, on this task: a report
            // line computed on another thread while the next query is timed competed with it for
            // the CPU (back-to-back p50 0.5-1.4 ms instead of 0.12-0.2 on 2 cores).
            var fatal: QueryProbeFatalError?
            await runClient(0, schedule: schedule) { message in
                switch message {
                case .outcome(let outcome): await onOutcome(outcome)
                case .fatal(let error): fatal = error
                case .finished: break
                }
            }
            if let fatal { throw fatal }
            return
        }
        let (messages, sink) = AsyncStream<ClientMessage>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in 0..<clients {
                group.addTask {
                    await runClient(client, schedule: schedule) { sink.yield($0) }
                    sink.yield(.finished)
                }
            }
            var running = clients
            for await message in messages {
                switch message {
                case .outcome(let outcome):
                    await onOutcome(outcome)
                case .fatal(let error):
                    group.cancelAll()
                    throw error
                case .finished:
                    running -= 1
                }
                if running == 0 { break }
            }
        }
    }

    /// One client: its own connection, queries claimed from the shared schedule.
    private func runClient(_ client: Int, schedule: QuerySchedule, deliver: (ClientMessage) async -> Void) async {
        var connection: PostgresConnection?
        var connectionID = client << 20
        // postgres-nio insists that a connection is closed before it is released.
        func release() async {
            if let connection { try? await connection.close() }
            connection = nil
        }
        var first = true
        while !Task.isCancelled, let slot = schedule.claim() {
            let (index, due) = slot
            do {
                if let due {
                    try await Task.sleep(until: due, clock: .continuous)
                } else if !first, options.intervalNanos > 0 {
                    try await Task.sleep(nanoseconds: UInt64(options.intervalNanos))
                }
            } catch {
                break  // cancelled while waiting
            }
            first = false
            let sql = options.sqlForIndex(index, options.query)
            if connection == nil || connection!.isClosed {
                await release()
                connectionID += 1
                do {
                    connection = try await connect(id: connectionID)
                } catch let error as QueryProbeFatalError {
                    await deliver(.fatal(error))
                    break
                } catch {
                    await deliver(.outcome(QueryOutcome(index: index, failure: "connect: \(describe(error))", sql: sql)))
                    continue
                }
            }
            guard let current = connection else { continue }
            let outcome = await timedQuery(sql, index: index, on: current)
            if outcome.latencyNanos == nil, !outcome.connectionUsable { await release() }
            await deliver(.outcome(outcome.result))
        }
        await release()
    }

    /// One query on `connection`, with the timeout.
    private func timedQuery(_ sql: String, index: Int, on connection: PostgresConnection) async
        -> (result: QueryOutcome, latencyNanos: Int64?, connectionUsable: Bool)
    {
        // The timeout closes the connection from the event loop rather than racing a
        // second task, so that the timed path has no extra task hops.
        let timedOut = TimeoutFlag()
        let timeoutNanos = options.timeoutNanos
        let timeout = connection.eventLoop.scheduleTask(in: .nanoseconds(timeoutNanos)) {
            timedOut.fire()
            connection.close().whenComplete { _ in }
        }
        let started = ContinuousClock.now
        do {
            let rows = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
            for try await _ in rows {}
            let elapsed = (ContinuousClock.now - started).nanoseconds
            timeout.cancel()
            return (QueryOutcome(index: index, latencyNanos: elapsed, sql: sql), elapsed, true)
        } catch {
            timeout.cancel()
            let reason =
                timedOut.fired ? "query timed out after \(Human.duration(seconds: Double(timeoutNanos) / 1e9))" : describe(error)
            // A server-side error (syntax, permissions) leaves the connection usable;
            // anything else (closed, reset, timeout) gets a fresh connection next time.
            return (QueryOutcome(index: index, failure: reason, sql: sql), nil, isServerError(error))
        }
    }

    private func connect(id: Int) async throws -> PostgresConnection {
        var configuration = PostgresConnection.Configuration(
            host: options.dsn.host, port: options.dsn.port, username: options.dsn.user,
            password: options.dsn.password, database: options.dsn.database, tls: .disable)
        configuration.options.connectTimeout = .nanoseconds(options.timeoutNanos)
        do {
            return try await PostgresConnection.connect(configuration: configuration, id: id, logger: logger)
        } catch let error as PSQLError where error.code == .server {
            let sqlState = error.serverInfo?[.sqlState] ?? ""
            // 28xxx invalid authorization, 3D000 unknown database: the same login fails forever.
            if sqlState.hasPrefix("28") || sqlState == "3D000" {
                throw QueryProbeFatalError(
                    description: "\(options.dsn.redacted): login rejected: \(describe(error))")
            }
            throw error
        } catch let error as PSQLError
            where [.unsupportedAuthMechanism, .authMechanismRequiresPassword, .saslError].contains(error.code)
        {
            throw QueryProbeFatalError(description: "\(options.dsn.redacted): authentication failed: \(describe(error))")
        }
    }
}

/// A short, user-facing reason for a failure (postgres-nio's own descriptions are redacted).
public func describe(_ error: any Error) -> String {
    if let error = error as? PSQLError {
        if let info = error.serverInfo {
            let severity = info[.severity] ?? "ERROR"
            let state = info[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            return "server \(severity): \(info[.message] ?? "no message")\(state)"
        }
        switch error.code {
        case .serverClosedConnection: return "the server closed the connection" + underlyingText(error)
        case .connectionError: return error.underlying.map(describe) ?? "connection error"
        case .uncleanShutdown: return "the connection was cut" + underlyingText(error)
        case .clientClosedConnection: return "the connection was closed" + underlyingText(error)
        case .authMechanismRequiresPassword: return "the server asks for a password; put one in the DSN"
        case .unsupportedAuthMechanism: return "the server asks for an authentication method postgres-nio lacks"
        case .sslUnsupported: return "the server does not support TLS"
        default: return "\(error.code)" + underlyingText(error)
        }
    }
    if let error = error as? IOError { return String(cString: strerror(error.errnoCode)) }
    if let error = error as? NIOConnectionError {
        var reasons = error.connectionErrors.map { describe($0.error) }
        // The resolver's own errors carry type names and codes; the fact is what helps.
        if error.dnsAAAAError != nil || error.dnsAError != nil, reasons.isEmpty { reasons.append("cannot resolve the host name") }
        let unique = reasons.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        return "cannot connect to \(error.host):\(error.port)" + (unique.isEmpty ? "" : ": " + unique.joined(separator: "; "))
    }
    if let channelError = error as? ChannelError, case .connectTimeout(let amount) = channelError {
        return "connection attempt timed out after \(Human.duration(seconds: Double(amount.nanoseconds) / 1e9))"
    }
    return UserMessage.describe(error)
}

private func underlyingText(_ error: PSQLError) -> String {
    guard let underlying = error.underlying else { return "" }
    return ": " + describe(underlying)
}

private func isServerError(_ error: any Error) -> Bool {
    (error as? PSQLError)?.code == .server
}

final class TimeoutFlag: Sendable {
    private let state = Atomic<Bool>(false)
    func fire() { state.store(true, ordering: .relaxed) }
    var fired: Bool { state.load(ordering: .relaxed) }
}

extension Duration {
    /// Whole nanoseconds (a run's durations are far below Int64's 292 years).
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
