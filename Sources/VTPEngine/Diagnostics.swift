import Logging

/// Diagnostics (connection errors, naks, idle closes) go to stderr through swift-log, so
/// report lines on stdout stay clean for scripts. Level from VTPBENCH_LOG_LEVEL
/// (trace, debug, info, notice, warning, error, critical; default info).
public enum Diagnostics {
    public static func bootstrap() {
        let level = ProcessInfoLevel.read()
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }

    public static func logger(_ label: String) -> Logger { Logger(label: label) }
}

private enum ProcessInfoLevel {
    static func read() -> Logger.Level {
        guard let raw = getenvString("VTPBENCH_LOG_LEVEL") else { return .info }
        return Logger.Level(rawValue: raw.lowercased()) ?? .info
    }

    private static func getenvString(_ name: String) -> String? {
        #if canImport(Glibc)
        guard let value = Glibc.getenv(name) else { return nil }
        #else
        guard let value = Darwin.getenv(name) else { return nil }
        #endif
        return String(cString: value)
    }
}
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
