import CommandLineKit

/// SIGINT/SIGTERM handling is the command-line kit's `TerminationSignals`; this name remains
/// only until vtp-receiver uses the kit's directly (then delete this file).
public typealias SignalWatcher = TerminationSignals
