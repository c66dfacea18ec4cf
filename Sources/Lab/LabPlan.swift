import BenchConfig

/// One experiment: a delay, a MAX_CONNECT, a mode and what MAX_CONNECT limits.
public struct LabCase: Sendable, Equatable, Hashable {
    public var delayMs: Double
    public var maxConnect: Int
    public var mode: SenderMode
    public var scope: MaxConnectScope

    public init(delayMs: Double, maxConnect: Int, mode: SenderMode, scope: MaxConnectScope) {
        self.delayMs = delayMs
        self.maxConnect = maxConnect
        self.mode = mode
        self.scope = scope
    }
}

/// Settings shared by every case of a run.
public struct LabSettings: Sendable, Equatable {
    /// Events per second the sender generates.
    public var rate: Double
    /// Seconds over which the events are generated (the measurement window).
    public var duration: Double
    public var eventSize: Int
    /// Seconds the sender keeps delivering after the window; nil = 3 × delay + 0.5 s, enough
    /// for events already on their way to land when there is no backlog.
    public var graceSeconds: Double?
    public var capture: Bool
    public var reportInterval: Double

    public init(
        rate: Double, duration: Double, eventSize: Int = 1024, graceSeconds: Double? = nil, capture: Bool = false,
        reportInterval: Double = 5
    ) {
        self.rate = rate
        self.duration = duration
        self.eventSize = eventSize
        self.graceSeconds = graceSeconds
        self.capture = capture
        self.reportInterval = reportInterval
    }

    /// rate × duration, at least one.
    public var events: Int { max(1, Int((rate * duration).rounded())) }

    public func grace(for labCase: LabCase) -> Double { graceSeconds ?? (3 * labCase.delayMs / 1000 + 0.5) }

    public func validate() throws(LabError) {
        guard rate > 0, rate.isFinite else { throw .invalidInput("--rate must be a positive number of events per second") }
        guard duration > 0, duration.isFinite else { throw .invalidInput("--duration must be > 0 seconds") }
        guard eventSize >= 512 else { throw .invalidInput("--event-size must be at least 512 bytes") }
        if let grace = graceSeconds, grace < 0 { throw .invalidInput("--grace must be ≥ 0 seconds") }
    }
}

public enum LabPlan {
    /// Every combination, delays outermost, in the order given.
    public static func cases(
        delays: [Double], maxConnects: [Int], modes: [SenderMode], scopes: [MaxConnectScope]
    ) throws(LabError) -> [LabCase] {
        guard !delays.isEmpty, !maxConnects.isEmpty, !modes.isEmpty, !scopes.isEmpty else {
            throw .invalidInput("every list (--delay-ms, --max-connect, --mode, --max-connect-scope) needs a value")
        }
        if let bad = delays.first(where: { !($0 >= 0) || $0 > 10_000 }) {
            throw .invalidInput("--delay-ms values must be between 0 and 10000 (got \(bad))")
        }
        if let bad = maxConnects.first(where: { $0 < 1 }) { throw .invalidInput("--max-connect values must be ≥ 1 (got \(bad))") }
        var result: [LabCase] = []
        for delay in delays {
            for maxConnect in maxConnects {
                for mode in modes {
                    // The scope only changes per-event mode: persistent connections are never released.
                    for scope in (mode == .persistent ? [scopes[0]] : scopes) {
                        result.append(LabCase(delayMs: delay, maxConnect: maxConnect, mode: mode, scope: scope))
                    }
                }
            }
        }
        return result
    }

    /// Parses a comma-separated list, naming the flag in the error.
    public static func list<T>(
        _ text: String, flag: String, example: String = "1,30", _ parse: (String) -> T?
    ) throws(LabError) -> [T] {
        var values: [T] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let item = part.trimmingCharacters(in: .whitespaces)
            guard let value = parse(item) else {
                throw .invalidInput("\(flag): cannot read \"\(item)\" (expected a comma-separated list, e.g. \(example))")
            }
            values.append(value)
        }
        return values
    }
}

public enum LabError: Error, CustomStringConvertible, Equatable {
    case invalidInput(String)
    case missingExecutable(String, searched: [String])
    case setupFailed(String)
    case processFailed(String)
    case interrupted

    public var description: String {
        switch self {
        case .invalidInput(let message): return message
        case .missingExecutable(let name, let searched):
            return "cannot find \(name) (looked in \(searched.joined(separator: ", "))); build it with `swift build` or pass --bin-dir"
        case .setupFailed(let message): return "setting up the lab failed: \(message)"
        case .processFailed(let message): return message
        case .interrupted: return "interrupted; the lab was torn down"
        }
    }
}

import Foundation
