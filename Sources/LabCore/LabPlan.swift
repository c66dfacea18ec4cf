import BenchConfig
import CommandLineKit
import Foundation

/// One experiment: a delay, a MAX_CONNECT, a mode, what MAX_CONNECT limits and (persistent) the
/// window of unacked events per connection.
public struct LabCase: Sendable, Equatable, Hashable {
    public var delayMs: Double
    public var maxConnect: Int
    public var mode: SenderMode
    public var scope: MaxConnectScope
    public var window: Int

    public init(delayMs: Double, maxConnect: Int, mode: SenderMode, scope: MaxConnectScope, window: Int = 1) {
        self.delayMs = delayMs
        self.maxConnect = maxConnect
        self.mode = mode
        self.scope = scope
        self.window = mode == .persistent ? window : 1
    }

    /// `persistent W32` for a window above 1, else the mode.
    public var modeLabel: String { window > 1 ? "\(mode.rawValue) W\(window)" : mode.rawValue }

    /// The tags the lab records each tool's run with: `delay=250ms`, `max_connect=30`,
    /// `mode=per-event`, `max_connect_scope=…`, and `window` for a persistent window above 1.
    public var storeTags: [String: String] {
        var tags = [
            "delay": Human.fixed(delayMs, decimals: delayMs.rounded() == delayMs ? 0 : 3) + "ms",
            "max_connect": String(maxConnect), "mode": mode.rawValue, "max_connect_scope": scope.rawValue,
        ]
        if window > 1 { tags["window"] = String(window) }
        return tags
    }
}

/// `--burst N --burst-every S`: N events at one instant every S seconds.
public struct LabBursts: Sendable, Equatable {
    public var size: Int
    public var everySeconds: Double

    public init(size: Int, everySeconds: Double) {
        self.size = size
        self.everySeconds = everySeconds
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
    /// Seconds between the tools' report lines and the lab's progress lines.
    public var reportInterval: Double
    /// Bursts instead of an even rate: one at the start of every `everySeconds` of the duration.
    public var bursts: LabBursts?
    /// A burst may take far longer than the delay to drain: the default grace then.
    public static let burstGraceSeconds = 300.0

    /// More events than this in one case is a typo, not an experiment (and keeps every count an Int).
    public static let maximumEvents = 100_000_000

    public init(
        rate: Double, duration: Double, eventSize: Int = 1024, graceSeconds: Double? = nil, capture: Bool = false,
        reportInterval: Double = 5, bursts: LabBursts? = nil
    ) {
        self.rate = rate
        self.duration = duration
        self.eventSize = eventSize
        self.graceSeconds = graceSeconds
        self.capture = capture
        self.reportInterval = reportInterval
        self.bursts = bursts
    }

    /// Bursts in the duration (one at its start, then every `everySeconds` before its end).
    public var burstCount: Int? {
        guard let bursts, bursts.everySeconds > 0 else { return nil }
        let count = (duration / bursts.everySeconds).rounded(.up)
        guard count.isFinite, count >= 1 else { return 1 }
        return count < Double(Self.maximumEvents) ? Int(count) : Self.maximumEvents
    }

    /// Events per second offered: the rate, or a burst's events over the time between bursts.
    public var offeredRate: Double { bursts.map { Double($0.size) / $0.everySeconds } ?? rate }

    /// Events scheduled at each instant: the burst size, or 1 at an even rate.
    public var burstSize: Int { bursts?.size ?? 1 }

    /// rate × duration (or burst size × bursts), at least one (`validate` bounds it).
    public var events: Int {
        if let bursts, let count = burstCount {
            let (product, overflow) = bursts.size.multipliedReportingOverflow(by: count)
            return overflow ? Self.maximumEvents : min(Self.maximumEvents, max(1, product))
        }
        let product = (rate * duration).rounded()
        guard product.isFinite, product >= 1 else { return 1 }
        return product < Double(Self.maximumEvents) ? Int(product) : Self.maximumEvents
    }

    /// The sender's spacing between scheduled instants, as it computes it (period / events, or
    /// the time between bursts).
    public var intervalNanos: Int64 {
        let nanos = bursts.map { $0.everySeconds * 1e9 } ?? duration * 1e9 / Double(events)
        return nanos.isFinite && nanos >= 0 && nanos < 9e18 ? Int64(nanos) : 0
    }

    public func grace(for labCase: LabCase) -> Double {
        graceSeconds ?? (bursts == nil ? 3 * labCase.delayMs / 1000 + 0.5 : Self.burstGraceSeconds)
    }

    public func validate() throws(LabError) {
        guard rate > 0, rate.isFinite else {
            throw .invalidInput("--rate must be a positive number of events per second (got \(rate))")
        }
        guard duration > 0, duration <= Durations.maximumSeconds else {
            throw .invalidInput(
                "--duration must be more than 0 s and at most a week (got \(Human.duration(seconds: duration)))")
        }
        if let bursts {
            guard bursts.size >= 1, bursts.size <= Self.maximumEvents else {
                throw .invalidInput("--burst must be from 1 to \(Human.grouped(Int64(Self.maximumEvents))) events (got \(bursts.size))")
            }
            guard bursts.everySeconds > 0, bursts.everySeconds <= Durations.maximumSeconds else {
                throw .invalidInput(
                    "--burst-every must be more than 0 s and at most a week (got \(Human.duration(seconds: bursts.everySeconds)))")
            }
        }
        let product = bursts.map { Double($0.size) * Double(burstCount ?? 1) } ?? rate * duration
        guard product <= Double(Self.maximumEvents) else {
            throw .invalidInput(
                "--rate × --duration is \(Human.significant(product)) events; at most \(Human.grouped(Int64(Self.maximumEvents))) per case")
        }
        guard eventSize >= 512 else { throw .invalidInput("--event-size must be at least 512 bytes (got \(eventSize))") }
        if let grace = graceSeconds, !(grace >= 0 && grace <= Durations.maximumSeconds) {
            throw .invalidInput("--grace must be between 0 s and a week (got \(Human.duration(seconds: grace)))")
        }
        // The tools refuse shorter report intervals; refused here before any case runs.
        guard reportInterval >= 0.1, reportInterval <= Durations.maximumSeconds else {
            throw .invalidInput("--report-interval must be at least 100 ms (got \(Human.duration(seconds: reportInterval)))")
        }
    }
}

public enum LabPlan {
    /// Every combination, delays outermost, in the order given.
    public static func cases(
        delays: [Double], maxConnects: [Int], modes: [SenderMode], scopes: [MaxConnectScope], windows: [Int] = [1]
    ) throws(LabError) -> [LabCase] {
        guard !delays.isEmpty, !maxConnects.isEmpty, !modes.isEmpty, !scopes.isEmpty else {
            throw .invalidInput("every list (--delay-ms, --max-connect, --mode, --max-connect-scope) needs a value")
        }
        if let bad = delays.first(where: { !($0 >= 0) || $0 > 10_000 }) {
            throw .invalidInput("--delay-ms values must be between 0 and 10 s (got \(Human.duration(seconds: bad / 1000)))")
        }
        if let bad = maxConnects.first(where: { $0 < 1 || $0 > 65_535 }) {
            throw .invalidInput("--max-connect values must be between 1 and 65535 (got \(bad))")
        }
        guard !windows.isEmpty else { throw .invalidInput("--window needs a value") }
        if let bad = windows.first(where: { $0 < 1 || $0 > BenchConfiguration.maximumWindow }) {
            throw .invalidInput("--window values must be between 1 and \(BenchConfiguration.maximumWindow) (got \(bad))")
        }
        var result: [LabCase] = []
        for delay in delays {
            for maxConnect in maxConnects {
                for mode in modes {
                    // The scope only changes per-event mode: persistent connections are never released;
                    // the window only persistent mode: a per-event connection carries one event.
                    for scope in (mode == .persistent ? [scopes[0]] : scopes) {
                        for window in (mode == .persistent ? windows : [1]) {
                            result.append(LabCase(delayMs: delay, maxConnect: maxConnect, mode: mode, scope: scope, window: window))
                        }
                    }
                }
            }
        }
        return result
    }

    /// One-way delays in ms from a comma-separated list of durations (`50,250`, `50ms,0.25s`;
    /// a bare number is ms); the error names the flag and says what is wrong with the item.
    public static func delays(_ text: String, flag: String) throws(LabError) -> [Double] {
        var values: [Double] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            do {
                values.append(try Durations.parseSeconds(String(part), bareUnit: .milliseconds) * 1000)
            } catch {
                throw .invalidInput("\(flag): \(error.description)")
            }
        }
        return values
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
    /// A tool is not next to vtp-lab (no --bin-dir given).
    case missingExecutable(String, searched: [String])
    /// --bin-dir does not exist, is not a directory, or lacks a tool.
    case badBinDirectory(String, reason: String)
    case setupFailed(String)
    case processFailed(String)
    case interrupted

    public var description: String {
        switch self {
        case .invalidInput(let message): return message
        case .missingExecutable(let name, let searched):
            return "cannot find \(name) (looked in \(searched.joined(separator: ", "))); build it with"
                + " `swift build --product \(name)` or pass --bin-dir"
        case .badBinDirectory(let path, let reason): return "--bin-dir \(path): \(reason)"
        case .setupFailed(let message): return "setting up the lab failed: \(message)"
        case .processFailed(let message): return message
        case .interrupted: return "interrupted; the lab was torn down"
        }
    }

    /// Bad flags or paths (64) versus a run that could not be carried out (2).
    public var isUsage: Bool {
        switch self {
        case .invalidInput, .badBinDirectory: return true
        case .missingExecutable, .setupFailed, .processFailed, .interrupted: return false
        }
    }
}
