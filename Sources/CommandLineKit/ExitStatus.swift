import ArgumentParser

/// One exit-status convention for every vtpbench tool (documented once, in the README):
///   0   the run completed and measured what was asked
///   1   the measurement ran but failed its goal (events not acked, queries failed, …)
///   2   the run could not be carried out (peer unreachable, capture not permitted, I/O error)
///   64  usage or bad input (flags, config file, output paths) — swift-argument-parser's own
public enum ExitStatus {
    public static let success = ExitCode(0)
    public static let measurementFailed = ExitCode(1)
    public static let runFailed = ExitCode(2)
    public static let usage = ExitCode(64)
}
