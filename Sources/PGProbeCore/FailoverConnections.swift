import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import CommandLineKit

/// How `pgprobe failover` talks to a server: every connection has a connect timeout, a login
/// timeout, TCP keepalives and a user timeout, every statement a server-side
/// `statement_timeout` and a client-side deadline, so that a partition (no RST) or a frozen
/// server never hangs a worker.
public struct FailoverConnector: Sendable {
    public var dsn: DSN
    public var connectTimeoutNanos: Int64
    public var statementTimeoutNanos: Int64
    let logger: Logger

    public init(dsn: DSN, connectTimeoutNanos: Int64, statementTimeoutNanos: Int64) {
        self.dsn = dsn
        self.connectTimeoutNanos = max(connectTimeoutNanos, 1_000_000)
        self.statementTimeoutNanos = max(statementTimeoutNanos, 1_000_000)
        var logger = Logger(label: "pgprobe-failover")
        logger.logLevel = .critical  // failures are reported by the probe itself
        self.logger = logger
    }

    /// The client-side deadline: the server's own statement_timeout should answer first.
    var clientDeadlineNanos: Int64 { statementTimeoutNanos + 500_000_000 }

    /// One login at `endpoint`. Throws `QueryProbeFatalError` when the server rejects the login.
    func connect(_ endpoint: DSN.Endpoint, id: Int) async throws -> PostgresConnection {
        let timeout = TimeAmount.nanoseconds(connectTimeoutNanos)
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(timeout)
            .channelOption(ChannelOptions.socketOption(.so_keepalive), value: 1)
            .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            // Dead peer found within ~2 s idle + 3 × 1 s probes; unacknowledged data within 5 s.
            .channelOption(ChannelOptions.socket(SocketOptionLevel(IPPROTO_TCP), SocketOptionName(TCP_KEEPIDLE)), value: 2)
            .channelOption(ChannelOptions.socket(SocketOptionLevel(IPPROTO_TCP), SocketOptionName(TCP_KEEPINTVL)), value: 1)
            .channelOption(ChannelOptions.socket(SocketOptionLevel(IPPROTO_TCP), SocketOptionName(TCP_KEEPCNT)), value: 3)
            .channelOption(ChannelOptions.socket(SocketOptionLevel(IPPROTO_TCP), SocketOptionName(TCP_USER_TIMEOUT)), value: 5000)
        let channel = try await bootstrap.connect(host: endpoint.host, port: endpoint.port).get()
        var configuration = PostgresConnection.Configuration(
            establishedChannel: channel, username: dsn.user, password: dsn.password, database: dsn.database)
        configuration.options.additionalStartupParameters = [
            ("statement_timeout", "\(max(statementTimeoutNanos / 1_000_000, 1))"),
            ("application_name", "pgprobe failover"),
        ]
        // A server that accepts TCP but never answers the startup (frozen) must not hang us.
        let guardTask = channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        defer { guardTask.cancel() }
        do {
            // The connection must live on its channel's loop (postgres-nio would pick any loop).
            return try await PostgresConnection.connect(
                on: channel.eventLoop, configuration: configuration, id: id, logger: logger)
        } catch let error as PSQLError where error.code == .server {
            let sqlState = error.serverInfo?[.sqlState] ?? ""
            // 28xxx invalid authorization, 3D000 unknown database: the same login fails forever.
            if sqlState.hasPrefix("28") || sqlState == "3D000" {
                throw QueryProbeFatalError(description: "\(dsn.at(endpoint).redacted): login rejected: \(describe(error))")
            }
            throw error
        }
    }

    /// Runs `query` under the client-side deadline. The deadline answers by itself: postgres-nio
    /// never completes a query written to a channel that has just closed, so the query's own
    /// result cannot be what ends the wait.
    func run(_ query: PostgresQuery, on connection: PostgresConnection) async -> StatementOutcome {
        if connection.isClosed { return .notSent("the connection was closed") }
        let deadline = clientDeadlineNanos
        let loop = connection.eventLoop
        let logger = self.logger
        return await withCheckedContinuation { (continuation: CheckedContinuation<StatementOutcome, Never>) in
            loop.execute {
                // Whichever comes first, the answer or the deadline, resumes; on the loop only.
                let waiting = NIOLoopBoundBox<CheckedContinuation<StatementOutcome, Never>?>(continuation, eventLoop: loop)
                let timer = loop.scheduleTask(in: .nanoseconds(deadline)) {
                    waiting.value?.resume(returning: .noAnswer("no answer within \(Human.duration(seconds: Double(deadline) / 1e9))"))
                    waiting.value = nil
                    connection.close().whenComplete { _ in }
                }
                Task {
                    let outcome = await Self.execute(query, on: connection, logger: logger)
                    loop.execute {
                        timer.cancel()
                        waiting.value?.resume(returning: outcome)
                        waiting.value = nil
                    }
                }
            }
        }
    }

    private static func execute(_ query: PostgresQuery, on connection: PostgresConnection, logger: Logger) async -> StatementOutcome {
        do {
            let rows = try await connection.query(query, logger: logger)
            var values: [Int64?] = []
            for try await row in rows { values.append(try row.decode(Int64?.self)) }
            return .answered(values)
        } catch {
            if let error = error as? PSQLError, error.code == .server, let info = error.serverInfo,
                info[.severity] == "ERROR"
            {
                // An ERROR aborts the transaction: nothing was applied.
                return .rejected(describe(error), sqlState: info[.sqlState])
            }
            // FATAL (e.g. terminated during a synchronous commit, already committed locally),
            // a cut connection: the outcome is unknown.
            return .noAnswer(describe(error))
        }
    }

    /// Logs in at each endpoint in turn, starting at `first`, until one is read-write
    /// (`pg_is_in_recovery()` false). `onLogin` sees every successful login.
    func findReadWrite(
        startingAt first: Int, id: Int, onLogin: (_ readWrite: Bool) -> Void
    ) async throws -> ReadWriteSearch {
        var reasons: [String] = []
        let endpoints = dsn.endpoints
        for step in 0..<endpoints.count {
            let index = (first + step) % endpoints.count
            let endpoint = endpoints[index]
            let connection: PostgresConnection
            do {
                connection = try await connect(endpoint, id: id)
            } catch let error as QueryProbeFatalError {
                throw error
            } catch {
                reasons.append("\(endpoint): \(describe(error))")
                continue
            }
            switch await run("SELECT CASE WHEN pg_is_in_recovery() THEN 1::int8 ELSE 0::int8 END", on: connection) {
            case .answered(let values) where values.first == 0:
                onLogin(true)
                return .found(connection, endpointIndex: index)
            case .answered:
                onLogin(false)
                reasons.append("\(endpoint): in recovery (a standby)")
            case .rejected(let reason, _), .noAnswer(let reason), .notSent(let reason):
                onLogin(false)
                reasons.append("\(endpoint): \(reason)")
            }
            try? await connection.close()
        }
        return .notFound(reasons: reasons)
    }
}

enum ReadWriteSearch {
    case found(PostgresConnection, endpointIndex: Int)
    /// Why, one entry per endpoint.
    case notFound(reasons: [String])
}

/// What became of one statement.
enum StatementOutcome: Sendable {
    /// The server answered; the first column of each row.
    case answered([Int64?])
    /// The server answered with an ERROR: the statement had no effect.
    case rejected(String, sqlState: String?)
    /// Sent, no answer (or the connection died under it): outcome unknown.
    case noAnswer(String)
    /// Never sent (the connection had closed): nothing was applied.
    case notSent(String)
}
