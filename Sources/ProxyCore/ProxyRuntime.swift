import CommandLineKit
import Foundation
import NIOCore
import NIOPosix

/// A config file with many listeners:
/// {"control": "127.0.0.1:8474", "proxies": [{"name", "listen", "upstream", "protocol", "log", "toxics": […]}]}
public struct ProxyFileConfig: Decodable, Sendable {
    public var control: HostPort?
    public var proxies: [ProxySpec]

    enum CodingKeys: String, CodingKey, CaseIterable { case control, proxies }

    public static func load(path: String) throws(ProxyError) -> ProxyFileConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .invalidConfig("cannot read \(path)")
        }
        return try load(data: data, source: path)
    }

    /// The file's bytes; `path` names it in errors.
    public static func load(data: Data, source path: String) throws(ProxyError) -> ProxyFileConfig {
        if let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            let known = Set(CodingKeys.allCases.map(\.rawValue))
            if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
                throw .invalidConfig("\(path): unknown key \"\(unknown)\" (known: control, proxies)")
            }
        }
        do {
            let config = try JSONDecoder().decode(ProxyFileConfig.self, from: data)
            // Checked here so a bad value is a configuration error (a usage error), not a start-up failure.
            for proxy in config.proxies { try proxy.validate() }
            return config
        } catch let error as DecodingError {
            throw .invalidConfig("\(path): \(UserMessage.describe(error))")
        } catch let error as ProxyError {
            throw .invalidConfig("\(path): \(UserMessage.describe(error))")
        } catch {
            throw .invalidConfig("\(path): \(UserMessage.describe(error))")
        }
    }
}

/// Everything that runs: listeners sharing one event-loop group (one loop per core) and the
/// optional control endpoint. Used by the executable and by the tests.
public final class ProxyRuntime: Sendable {
    public let listeners: [ProxyListener]
    public let control: ControlServer?
    public let group: MultiThreadedEventLoopGroup
    let logs: [LogSink]

    /// `warn` receives the listeners' rate-limited warnings (unreachable upstream, refused
    /// startups); the executable sends them to stderr. `controlToken`: what the control
    /// endpoint requires in `Authorization: Bearer TOKEN` (nil: nothing).
    public static func start(
        specs: [ProxySpec], control: HostPort?, controlToken: ControlToken? = nil, threads: Int = System.coreCount,
        warn: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws -> ProxyRuntime {
        guard !specs.isEmpty else { throw ProxyError.invalidConfig("no proxy to run (give --listen/--upstream or --config)") }
        if Set(specs.map(\.name)).count != specs.count {
            throw ProxyError.invalidConfig("two proxies share a name; names must be unique")
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        // Listeners that name the same log file share one sink (one writer per file).
        var sinks: [String: LogSink] = [:]
        var listeners: [ProxyListener] = []
        do {
            for spec in specs {
                var sink: LogSink? = nil
                if let path = spec.log {
                    if let existing = sinks[path] {
                        sink = existing
                    } else {
                        sink = try LogSink(path: path, reportFailure: warn)
                        sinks[path] = sink
                    }
                }
                let listener = try ProxyListener(spec: spec, group: group, log: sink, warn: warn)
                try await listener.start()
                listeners.append(listener)
            }
            let controlServer: ControlServer?
            if let control {
                controlServer = try await ControlServer.start(
                    on: control, listeners: listeners, group: group, token: controlToken)
            } else {
                controlServer = nil
            }
            return ProxyRuntime(listeners: listeners, control: controlServer, group: group, logs: Array(sinks.values))
        } catch {
            for listener in listeners { await listener.stop() }
            for sink in sinks.values { sink.stop() }
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private init(listeners: [ProxyListener], control: ControlServer?, group: MultiThreadedEventLoopGroup, logs: [LogSink]) {
        self.listeners = listeners
        self.control = control
        self.group = group
        self.logs = logs
    }

    public func listener(named name: String) -> ProxyListener? { listeners.first { $0.spec.name == name } }

    /// Lines written to all logs so far.
    public func flushLogs() { for log in logs { log.flush() } }

    public var logLineCount: UInt64 { logs.reduce(0) { $0 + $1.lineCount } }

    public func shutdown() async {
        await control?.close()
        for listener in listeners { await listener.stop() }
        // Let the tear-downs scheduled on the loops write their "close" records.
        try? await Task.sleep(nanoseconds: 50_000_000)
        for log in logs { log.stop() }
        try? await group.shutdownGracefully()
    }
}
