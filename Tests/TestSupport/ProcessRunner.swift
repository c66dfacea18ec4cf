import Foundation
import Synchronization
import XCTest

/// Runs the built executables as a user would.
public enum Tools {
    /// Directory of the built products: the test bundle sits beside them.
    public static let binDirectory: URL = {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }()
    public static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The built tool, or a skip saying how to build it.
    public static func url(_ name: String) throws -> URL {
        guard let path = path(name) else {
            throw XCTSkip("\(name) not built in \(binDirectory.path); run `swift build` first")
        }
        return URL(fileURLWithPath: path)
    }

    /// The built tool's path, if it was built (beside the test bundle, or in .build/debug).
    public static func path(_ name: String) -> String? {
        let candidates = [
            binDirectory.appendingPathComponent(name).path,
            packageRoot.appendingPathComponent(".build/debug/\(name)").path,
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

/// Where `swift build` put the executables (next to the test bundle).
public var productsDirectory: URL { Tools.binDirectory }

/// A child process whose output is collected as it comes: stdout and stderr apart, and both
/// interleaved in arrival order (`text`).
public final class RunningProcess: Sendable {
    public let process: Process
    private struct Output {
        var stdout = Data()
        var stderr = Data()
        var both = Data()
    }
    private let output = Mutex(Output())

    public convenience init(_ executable: String, _ arguments: [String]) throws {
        try self.init(URL(fileURLWithPath: executable), arguments)
    }

    public init(_ executable: URL, _ arguments: [String], cwd: URL? = nil) throws {
        let process = Process()
        self.process = process
        process.executableURL = executable
        process.arguments = arguments
        if let cwd { process.currentDirectoryURL = cwd }
        let stdoutPipe = Pipe()
        let stderrPipe = Pipe()
        process.standardOutput = stdoutPipe
        process.standardError = stderrPipe
        process.standardInput = FileHandle.nullDevice
        stdoutPipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            self?.output.withLock {
                $0.stdout.append(data)
                $0.both.append(data)
            }
        }
        stderrPipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            self?.output.withLock {
                $0.stderr.append(data)
                $0.both.append(data)
            }
        }
        try process.run()
    }

    public var stdout: String { output.withLock { String(decoding: $0.stdout, as: UTF8.self) } }
    public var stderr: String { output.withLock { String(decoding: $0.stderr, as: UTF8.self) } }
    /// stdout and stderr in the order they arrived.
    public var text: String { output.withLock { String(decoding: $0.both, as: UTF8.self) } }

    /// Waits for a line matching `predicate` on stdout (report lines must be flushed).
    public func waitForOutput(timeout: Double = 10, _ predicate: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let line = stdout.split(separator: "\n").map(String.init).first(where: predicate) { return line }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return nil
    }

    /// Waits for `marker` on either stream; returns the text after it on that line.
    public func waitFor(_ marker: String, seconds: Double) -> String? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let text = self.text
            if let range = text.range(of: marker) {
                return String(text[range.upperBound...].prefix { $0 != "\n" })
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return nil
    }

    /// Whether the process exited by itself within `seconds` (it is terminated if not).
    public func waitForExit(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning {
            process.terminate()
            return false
        }
        return true
    }

    /// The exit status, terminating the process after `timeout`.
    @discardableResult
    public func wait(timeout: Double = 60) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        Thread.sleep(forTimeInterval: 0.05)  // let the pipe handlers drain
        return process.terminationStatus
    }

    public static func run(_ executable: URL, _ arguments: [String], timeout: Double = 60) throws -> (Int32, String, String) {
        let p = try RunningProcess(executable, arguments)
        let status = p.wait(timeout: timeout)
        return (status, p.stdout, p.stderr)
    }
}

public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

public struct SpawnError: Error, CustomStringConvertible {
    public var description: String
}

/// Runs a process to its end: exit status (128 + signal when killed), stdout and stderr
/// (`mergeOutput`: stderr into stdout, to keep the order of lines across both).
/// posix_spawn + waitpid, output through files: Foundation's Process.waitUntilExit was seen never
/// returning after a script that starts a daemon (pg_ctl), and a daemon would hold a pipe open.
public func runProcess(
    _ executable: String, _ arguments: [String], environment: [String: String] = [:], mergeOutput: Bool = false
) throws -> ProcessResult {
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("vtpbench-run-\(UUID().uuidString)").path
    let outPath = base + ".out"
    let errPath = base + ".err"
    defer {
        unlink(outPath)
        unlink(errPath)
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    if mergeOutput {
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
    } else {
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    }
    let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { "\($0.key)=\($0.value)" }
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp = env.map { strdup($0) } + [nil]
    defer {
        for pointer in argv { free(pointer) }
        for pointer in envp { free(pointer) }
    }
    var pid = pid_t()
    // A bare name is looked up in PATH, as a shell would.
    let spawned =
        executable.contains("/")
        ? posix_spawn(&pid, executable, &actions, nil, argv, envp)
        : posix_spawnp(&pid, executable, &actions, nil, argv, envp)
    guard spawned == 0 else {
        throw SpawnError(description: "cannot run \(executable): \(String(cString: strerror(spawned)))")
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    let exitStatus = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    let stdout = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
    let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
    return ProcessResult(status: exitStatus, stdout: stdout, stderr: stderr)
}

/// `runProcess` with both streams in one text, as a terminal shows them.
@discardableResult
public func runMerged(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (Int32, String) {
    let result = try runProcess(executable, arguments, environment: environment, mergeOutput: true)
    return (result.status, result.stdout)
}
