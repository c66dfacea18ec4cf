import Foundation
import XCTest

/// Runs the built executables as a user would.
enum Tools {
    /// Directory of the built products: the test bundle sits beside them.
    static let binDirectory: URL = {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }()
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func url(_ name: String) throws -> URL {
        let url = binDirectory.appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw XCTSkip("\(name) not built in \(binDirectory.path); run `swift build` first")
        }
        return url
    }
}

final class RunningProcess: @unchecked Sendable {  // output buffers guarded by outLock
    let process = Process()
    private let stdoutPipe = Pipe()
    private let stderrPipe = Pipe()
    private let outLock = NSLock()
    private var outData = Data()
    private var errData = Data()

    init(_ executable: URL, _ arguments: [String], cwd: URL? = nil) throws {
        process.executableURL = executable
        process.arguments = arguments
        if let cwd { process.currentDirectoryURL = cwd }
        process.standardOutput = stdoutPipe
        process.standardError = stderrPipe
        process.standardInput = FileHandle.nullDevice
        stdoutPipe.fileHandleForReading.readabilityHandler = { [weak self] h in
            let d = h.availableData
            self?.outLock.lock(); self?.outData.append(d); self?.outLock.unlock()
        }
        stderrPipe.fileHandleForReading.readabilityHandler = { [weak self] h in
            let d = h.availableData
            self?.outLock.lock(); self?.errData.append(d); self?.outLock.unlock()
        }
        try process.run()
    }

    var stdout: String { outLock.lock(); defer { outLock.unlock() }; return String(decoding: outData, as: UTF8.self) }
    var stderr: String { outLock.lock(); defer { outLock.unlock() }; return String(decoding: errData, as: UTF8.self) }

    /// Waits for a line matching `predicate` on stdout (report lines must be flushed).
    func waitForOutput(timeout: Double = 10, _ predicate: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let line = stdout.split(separator: "\n").map(String.init).first(where: predicate) { return line }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return nil
    }

    @discardableResult
    func wait(timeout: Double = 60) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning { process.terminate(); process.waitUntilExit() }
        process.waitUntilExit()
        Thread.sleep(forTimeInterval: 0.05)  // let the pipe handlers drain
        return process.terminationStatus
    }

    static func run(_ executable: URL, _ arguments: [String], timeout: Double = 60) throws -> (Int32, String, String) {
        let p = try RunningProcess(executable, arguments)
        let status = p.wait(timeout: timeout)
        return (status, p.stdout, p.stderr)
    }
}
