import Foundation
import Synchronization
import TestSupport
import XCTest

/// A throwaway PostgreSQL cluster started with scripts/pg-cluster (one per test class).
final class PGCluster: Sendable {
    let directory: String
    let port: Int
    let dsn: String

    static var repositoryRoot: URL { Tools.packageRoot }

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
    static func run(_ arguments: [String]) throws -> String {
        let result = try spawn(arguments)
        guard result.status == 0 else {
            throw ClusterError(
                message: "\(arguments.joined(separator: " ")) failed (status \(result.status)): \(result.stderr)\(result.stdout)")
        }
        return result.stdout
    }

    /// Runs a command (looked up in PATH) to its end.
    static func spawn(_ arguments: [String], mergeOutput: Bool = false) throws -> (status: Int32, stdout: String, stderr: String) {
        // Through env, as a shell line: `VAR=value command …` works.
        let result = try runProcess("/usr/bin/env", arguments, mergeOutput: mergeOutput)
        return (result.status, result.stdout, result.stderr)
    }
}

/// A test class with its own cluster: started before its first test, destroyed after its last.
class ClusterTestCase: XCTestCase {
    private static let fixtures = Mutex<[ObjectIdentifier: ClusterFixture]>([:])

    /// This class's fixture.
    class var fixture: ClusterFixture {
        fixtures.withLock { $0[ObjectIdentifier(self), default: ClusterFixture()] }
    }

    override class func setUp() {
        super.setUp()
        let fixture = ClusterFixture()
        fixtures.withLock { $0[ObjectIdentifier(self)] = fixture }
        fixture.start()
    }

    override class func tearDown() {
        fixtures.withLock { $0.removeValue(forKey: ObjectIdentifier(self)) }?.destroy()
        super.tearDown()
    }

    /// The running cluster, or why it could not start.
    func cluster() throws -> PGCluster { try Self.fixture.cluster() }
}

/// One cluster: started in a class's `setUp`, destroyed in its `tearDown`.
final class ClusterFixture: Sendable {
    private let state = Mutex<Result<PGCluster, any Error>?>(nil)

    func start() { state.withLock { $0 = Result { try PGCluster() } } }

    func destroy() {
        state.withLock { state in
            if case .success(let cluster) = state { cluster.destroy() }
            state = nil
        }
    }

    /// The running cluster, or why it could not start.
    func cluster() throws -> PGCluster {
        guard let result = state.withLock({ $0 }) else { throw PGCluster.ClusterError(message: "no cluster") }
        return try result.get()
    }
}

/// The directory holding the built products (the test bundle sits beside them).
