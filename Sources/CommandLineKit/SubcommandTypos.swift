import ArgumentParser

extension ParsableCommand {
    /// For a command with subcommands: when the first word of `arguments` names none of them,
    /// the one-line message to print instead of the parser's, with a suggestion for a typo
    /// (`unknown subcommand 'qeury'; did you mean 'query'?`). nil when the arguments start with
    /// a subcommand or a flag.
    public static func unknownSubcommandMessage(_ arguments: [String]) -> String? {
        let names = configuration.subcommands.map { $0._commandName } + ["help"]
        guard configuration.subcommands.count > 0, let word = arguments.first, !word.hasPrefix("-"),
            !names.contains(word)
        else { return nil }
        if let suggestion = Suggestions.closest(to: word, among: names) {
            return "unknown subcommand '\(word)'; did you mean '\(suggestion)'?"
        }
        return "unknown subcommand '\(word)' (one of: \(names.dropLast().joined(separator: ", ")))"
    }
}
