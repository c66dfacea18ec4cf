import ArgumentParser
import CommandLineKit

struct PGProbeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pgprobe",
        abstract: "Measure client ↔ PostgreSQL latency: by timing queries, from packets, and both at once.",
        discussion: """
            Exit status: 0 done, 1 the measurement failed its goal (queries failed or not seen), \
            2 the run could not be carried out (login rejected, capture not permitted), 64 bad \
            arguments or an unwritable output path.
            """,
        version: VTPBenchVersion.string,
        subcommands: [QueryCommand.self, SniffCommand.self, CrosscheckCommand.self, FailoverCommand.self])
}

extension PGProbeCommand {
    /// Parses and runs the chosen subcommand. (ArgumentParser's own async `main` cannot be
    /// used: top-level code is needed to install the executor before any task starts, and
    /// from there the synchronous `main` overload is picked.) Concrete types make sure the
    /// async `run()` is the one called.
    static func runSelected(_ arguments: [String]) async {
        if let message = unknownSubcommandMessage(arguments) {
            emitError("pgprobe: \(message)")
            exit(withError: ExitStatus.usage)
        }
        do {
            var command = try parseAsRoot(arguments)
            switch command {
            case let query as QueryCommand: try await query.run()
            case let sniff as SniffCommand: try await sniff.run()
            case let crosscheck as CrosscheckCommand: try await crosscheck.run()
            case let failover as FailoverCommand: try await failover.run()
            default: try command.run()  // --help, --version
            }
        } catch {
            exit(withError: error)
        }
    }
}
