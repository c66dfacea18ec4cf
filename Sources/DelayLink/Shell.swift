import Foundation

/// Runs system commands (iproute2) for setting up namespaces and links.
public enum Shell {
    /// Runs `arguments` (resolved on PATH), returns combined output; throws on non-zero exit.
    @discardableResult
    public static func run(_ arguments: [String]) throws(DelayLinkError) -> String {
        let (status, output) = execute(arguments)
        guard status == 0 else { throw .command(arguments.joined(separator: " "), status: status, output: output) }
        return output
    }

    /// Runs and returns status and output without throwing (for best-effort clean-up).
    public static func execute(_ arguments: [String]) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return (127, "cannot start \(arguments.first ?? ""): \(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
