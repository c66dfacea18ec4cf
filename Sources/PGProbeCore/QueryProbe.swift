import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

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
    public var count: Int
    /// Pause between the end of one query and the start of the next.
    public var intervalNanos: Int64
    /// A query (or connection attempt) slower than this is abandoned and counted as failed.
    public var timeoutNanos: Int64
    /// Builds each query's text from its index; crosscheck uses it to tag queries.
    public var sqlForIndex: @Sendable (Int, String) -> String

    public init(
        dsn: DSN, query: String = "SELECT 1", count: Int = 10, intervalNanos: Int64 = 100_000_000,
        timeoutNanos: Int64 = 10_000_000_000, sqlForIndex: @escaping @Sendable (Int, String) -> String = { _, sql in sql }
    ) {
        self.dsn = dsn
        self.query = query
        self.count = count
        self.intervalNanos = intervalNanos
        self.timeoutNanos = timeoutNanos
        self.sqlForIndex = sqlForIndex
    }
}

/// Times queries end to end over postgres-nio, reconnecting after connection failures.
///
/// Each attempt is one slot of `count`: a refused connection or a server restart costs the
/// slot (counted as failed, with the reason) and the next slot reconnects, so a probe run
/// across a restart shows exactly how many queries the outage cost.
public struct QueryProbe: Sendable {
    public var options: QueryProbeOptions
    private let logger: Logger

    public init(options: QueryProbeOptions) {
        self.options = options
        var logger = Logger(label: "pgprobe")
        logger.logLevel = .critical  // postgres-nio logs connection errors we report ourselves
        self.logger = logger
    }

    /// Runs the probe; `onOutcome` sees every attempt in order. Stops early on cancellation.
    /// Throws `QueryProbeFatalError` when the server rejects the login (retrying cannot help).
    public func run(onOutcome: (QueryOutcome) async -> Void) async throws {
        var connection: PostgresConnection?
        var connectionID = 0
        // postgres-nio insists that a connection is closed before it is released.
        func release() async {
            if let connection { try? await connection.close() }
            connection = nil
        }
        for index in 0..<options.count {
            if Task.isCancelled { break }
            if index > 0, options.intervalNanos > 0 {
                do { try await Task.sleep(nanoseconds: UInt64(options.intervalNanos)) } catch { break }
            }
            let sql = options.sqlForIndex(index, options.query)
            if connection == nil || connection!.isClosed {
                await release()
                connectionID += 1
                do {
                    connection = try await connect(id: connectionID)
                } catch let error as QueryProbeFatalError {
                    throw error
                } catch {
                    await onOutcome(QueryOutcome(index: index, failure: "connect: \(describe(error))", sql: sql))
                    continue
                }
            }
            guard let current = connection else { continue }
            // The timeout closes the connection from the event loop rather than racing a
            // second task, so that the timed path has no extra task hops.
            let timedOut = TimeoutFlag()
            let timeoutNanos = options.timeoutNanos
            let timeout = current.eventLoop.scheduleTask(in: .nanoseconds(timeoutNanos)) {
                timedOut.fire()
                current.close().whenComplete { _ in }
            }
            let started = ContinuousClock.now
            do {
                let rows = try await current.query(PostgresQuery(unsafeSQL: sql), logger: logger)
                for try await _ in rows {}
                let elapsed = ContinuousClock.now - started
                timeout.cancel()
                await onOutcome(QueryOutcome(index: index, latencyNanos: elapsed.nanoseconds, sql: sql))
            } catch {
                timeout.cancel()
                let reason = timedOut.fired ? "query timed out after \(timeoutNanos / 1_000_000) ms" : describe(error)
                // A server-side error (syntax, permissions) leaves the connection usable;
                // anything else (closed, reset, timeout) gets a fresh connection next time.
                if !isServerError(error) { await release() }
                await onOutcome(QueryOutcome(index: index, failure: reason, sql: sql))
            }
        }
        await release()
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
        case .authMechanismRequiresPassword: return "the server asks for a password; put one in the DSN"
        case .unsupportedAuthMechanism: return "the server asks for an authentication method postgres-nio lacks"
        case .sslUnsupported: return "the server does not support TLS"
        default: return "\(error.code)" + underlyingText(error)
        }
    }
    if let error = error as? IOError { return String(cString: strerror(error.errnoCode)) }
    if let error = error as? NIOConnectionError {
        var reasons = error.connectionErrors.map { describe($0.error) }
        if let dns = error.dnsAAAAError ?? error.dnsAError, reasons.isEmpty { reasons.append("cannot resolve: \(dns)") }
        let unique = reasons.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        return "cannot connect to \(error.host):\(error.port)" + (unique.isEmpty ? "" : ": " + unique.joined(separator: "; "))
    }
    if error is ChannelError, case .connectTimeout(let amount) = error as! ChannelError {
        return "connection attempt timed out after \(amount.nanoseconds / 1_000_000) ms"
    }
    return "\(error)"
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
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
