import ArgumentParser
import Foundation

/// A failure told in one line (`vtp-lab: --bin-dir /x: no such directory`) with the exit status
/// it stands for, without swift-argument-parser's usage block (that is for flag syntax).
/// Used by vtp-lab and vtp-netem.
public struct OneLineFailure: Error, CustomStringConvertible, Equatable {
    public var description: String
    public var status: Int32

    public init(_ message: String, status: ExitCode) {
        description = message
        self.status = status.rawValue
    }

    /// Runs `body`; a `OneLineFailure` is printed to stderr as `tool: message` and turned into
    /// its exit status (which swift-argument-parser exits with, silently).
    public static func reporting(tool: String, _ body: () throws -> Void) throws {
        do { try body() } catch let failure as OneLineFailure {
            FileHandle.standardError.write(Data("\(tool): \(failure.description)\n".utf8))
            throw ExitCode(failure.status)
        }
    }
}
