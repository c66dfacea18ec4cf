import Foundation
import XCTest

/// A throwaway PostgreSQL cluster started with scripts/pg-cluster (one per test class).
final class PGCluster: @unchecked Sendable {
    let directory: String
    let port: Int
    let dsn: String

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static var script: String { repositoryRoot.appendingPathComponent("scripts/pg-cluster").path }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgprobe-test-\(UUID().uuidString)").path
        let output = try Self.run([Self.script, "start", directory])
        var values: [String: String] = [:]
        for line in output.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        guard let portText = values["PGPORT"], let port = Int(portText), let dsn = values["DSN"] else {
            throw ClusterError(message: "pg-cluster printed no PGPORT/DSN: \(output)")
        }
        self.port = port
        self.dsn = dsn
    }

    func stop() throws { _ = try Self.run([Self.script, "stop", directory]) }

    /// Starts the stopped cluster again on the same port.
    func start() throws { _ = try Self.run([Self.script, "start", directory, String(port)]) }

    func destroy() {
        try? stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    struct ClusterError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    /// Runs a command, returns its stdout; throws with its stderr when it fails.
    @discardableResult
    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let stdout = String(decoding: outData, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw ClusterError(
                message: "\(arguments.joined(separator: " ")) exited \(process.terminationStatus): "
                    + String(decoding: errData, as: UTF8.self) + stdout)
        }
        return stdout
    }
}
