import CommandLineKit
import Foundation
import NIOConcurrencyHelpers
import Protocol

/// One log line: a JSON object with "ts" (UTC, microseconds), "conn" and "event" first.
/// Built by hand: this runs for every query, and the keys are few and fixed.
public struct LogRecord: Sendable {
    public private(set) var json: String

    public init(event: String, connection: UInt64, nowNanos: Int64 = WallClock.nowNanos()) {
        json = "{\"ts\":\"\(ISO8601Time.formatMicroseconds(nanos: nowNanos))\",\"conn\":\(connection),\"event\":\"\(event)\""
    }

    public mutating func add(_ key: String, _ value: String?) {
        json += ",\"\(key)\":"
        if let value { LogRecord.appendQuoted(value, to: &json) } else { json += "null" }
    }

    public mutating func add(_ key: String, _ value: Int) { json += ",\"\(key)\":\(value)" }
    public mutating func add(_ key: String, _ value: UInt64) { json += ",\"\(key)\":\(value)" }
    public mutating func add(_ key: String, _ value: Int64) { json += ",\"\(key)\":\(value)" }
    public mutating func add(_ key: String, seconds value: Double) {
        json += ",\"\(key)\":" + (value.isFinite ? String(format: "%.6f", value) : "null")
    }

    public mutating func add(_ key: String, _ values: [String?]) {
        json += ",\"\(key)\":["
        for (index, value) in values.enumerated() {
            if index > 0 { json += "," }
            if let value { LogRecord.appendQuoted(value, to: &json) } else { json += "null" }
        }
        json += "]"
    }

    public mutating func add(_ key: String, numbers values: [UInt32]) {
        json += ",\"\(key)\":[" + values.map(String.init).joined(separator: ",") + "]"
    }

    public var line: String { json + "}\n" }

    static func appendQuoted(_ text: String, to out: inout String) {
        out += "\""
        var plain = true
        for byte in text.utf8 where byte < 0x20 || byte == 0x22 || byte == 0x5C {
            plain = false
            break
        }
        if plain {
            out += text
        } else {
            for scalar in text.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case _ where scalar.value < 0x20:
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                default: out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}

/// Where log lines go: a file (appended) or standard output. Lines are buffered and written
/// in batches (every 64 KiB, every 100 ms, and at `flush`), so logging every query of a
/// 20,000 TPS benchmark does not cost a system call each.
public final class LogSink: Sendable {
    private struct State {
        var pending: [UInt8] = []
        var lines: UInt64 = 0
        /// Lines in batches whose write failed (a full disk): counted, never retried.
        var lostLines: UInt64 = 0
        var pendingLines: UInt64 = 0
        var failed = false
    }

    private let state = NIOLockedValueBox(State())
    private let handle: FileHandle
    private let closeOnDeinit: Bool
    private let stopped = NIOLockedValueBox(false)
    private let path: String
    private let reportFailure: @Sendable (String) -> Void

    /// `reportFailure` gets one line when a write first fails; the proxy keeps forwarding.
    public init(path: String?, reportFailure: @escaping @Sendable (String) -> Void = { _ in }) throws(ProxyError) {
        self.path = path ?? "-"
        self.reportFailure = reportFailure
        if let path, path != "-" {
            if !FileManager.default.fileExists(atPath: path) {
                guard FileManager.default.createFile(atPath: path, contents: nil) else {
                    throw .invalidValue(what: "log path", value: path, expected: "a writable file")
                }
            }
            guard let handle = FileHandle(forWritingAtPath: path) else {
                throw .invalidValue(what: "log path", value: path, expected: "a writable file")
            }
            handle.seekToEndOfFile()
            self.handle = handle
            closeOnDeinit = true
        } else {
            handle = FileHandle.standardOutput
            closeOnDeinit = false
        }
        let thread = Thread { [weak self] in
            while let self, !self.stopped.withLockedValue({ $0 }) {
                Thread.sleep(forTimeInterval: 0.1)
                self.flush()
            }
        }
        thread.name = "vtp-proxy-log"
        thread.start()
    }

    deinit {
        stopped.withLockedValue { $0 = true }
        if closeOnDeinit { try? handle.close() }
    }

    public func write(_ record: LogRecord) {
        let line = record.line
        let full = state.withLockedValue { state -> (bytes: [UInt8], lines: UInt64)? in
            state.pending.append(contentsOf: line.utf8)
            state.lines += 1
            state.pendingLines += 1
            guard state.pending.count >= 1 << 16 else { return nil }
            return Self.take(&state)
        }
        if let full { save(full.bytes, lines: full.lines) }
    }

    /// Lines logged so far (buffered, written or lost).
    public var lineCount: UInt64 { state.withLockedValue { $0.lines } }

    /// Lines whose write failed.
    public var lostLineCount: UInt64 { state.withLockedValue { $0.lostLines } }

    public func flush() {
        let batch = state.withLockedValue { Self.take(&$0) }
        if !batch.bytes.isEmpty { save(batch.bytes, lines: batch.lines) }
    }

    private static func take(_ state: inout State) -> (bytes: [UInt8], lines: UInt64) {
        defer {
            state.pending.removeAll(keepingCapacity: true)
            state.pendingLines = 0
        }
        return (state.pending, state.pendingLines)
    }

    /// Writes a batch; a failure (full disk, closed pipe) is reported once and its lines counted
    /// as lost. Foundation's non-throwing `write(_:)` would trap here and take the proxy down.
    private func save(_ bytes: [UInt8], lines: UInt64) {
        do {
            try handle.write(contentsOf: bytes)
        } catch {
            let first = state.withLockedValue { state -> Bool in
                state.lostLines += lines
                defer { state.failed = true }
                return !state.failed
            }
            if first {
                reportFailure(
                    "vtp-proxy: cannot write the log \(path): \(UserMessage.describe(error)); lines that do not fit are"
                        + " counted as lost, forwarding goes on")
            }
        }
    }

    public func stop() {
        stopped.withLockedValue { $0 = true }
        flush()
    }
}
