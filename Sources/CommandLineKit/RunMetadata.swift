import Foundation

/// What every summary JSON carries about the run itself, so files from many hosts and days
/// can be told apart and compared: `run_id`, `version`, `host`, `started_at` (ISO 8601 UTC).
public struct RunMetadata: Codable, Sendable, Equatable {
    public var run_id: String
    public var version: String
    public var host: String
    public var started_at: String

    public init(runID: UUID = UUID(), startedAt: Date = Date()) {
        run_id = runID.uuidString.lowercased()
        version = VTPBenchVersion.string
        host = ProcessInfo.processInfo.hostName
        started_at = RunMetadata.iso8601(startedAt)
    }

    public static func iso8601(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }
}

/// The version every tool prints with `--version` and writes into its summaries.
public enum VTPBenchVersion {
    public static let string = "0.3.0"
}
