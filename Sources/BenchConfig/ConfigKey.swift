import CommandLineKit
import Foundation

/// One `config.json` key, declared once in `BenchConfiguration.table`: its name, the property it
/// sets, what it may hold, its rule and its flags' help. Loading, validation, `jsonObject` and the
/// command-line overrides (`SenderSettings`, `ReceiverSettings`) all loop over the table.
public struct ConfigKey: Sendable {
    public enum Tool: Sendable, Hashable { case sender, receiver }

    /// A value read from config.json or from a flag's text, before it is set.
    enum Value {
        case text(String)
        case integer(Int)
        case seconds(Double)
        case targets([SenderTarget])
    }

    enum Kind: Sendable {
        case text, integer, choice([String])
        case duration(DurationRule)
        /// A list of "host:port" (`targets`).
        case targets
    }

    public let name: String
    /// The flag's name when it is not the key's (`targets` → `--target`, given once per target).
    var flagName: String? = nil
    let kind: Kind
    /// `--help` text of the flag that overrides the key, per tool that has one.
    let help: [Tool: String]
    /// Its rule reads other keys (event_size ≤ max_frame_size): checked after them.
    let readsOtherKeys: Bool
    private let isValid: @Sendable (BenchConfiguration) -> Bool
    /// What an error says is expected (may depend on other keys).
    let expected: @Sendable (BenchConfiguration) -> String
    /// The current value as an error message shows it.
    let shown: @Sendable (BenchConfiguration) -> String
    /// The current value as JSON.
    let jsonValue: @Sendable (BenchConfiguration) -> Any
    let write: @Sendable (inout BenchConfiguration, Value) -> Void

    /// The flag that overrides the key: `max_connect` → `--max-connect`.
    public var flag: String { "--" + (flagName ?? name.replacingOccurrences(of: "_", with: "-")) }

    /// The value's problem in `configuration`, or nil when it is valid.
    func problem(in configuration: BenchConfiguration) -> (value: String, expected: String)? {
        isValid(configuration) ? nil : (shown(configuration), expected(configuration))
    }

    /// What config.json holds, or nil when it is of the wrong type or form.
    func value(json: Any) -> Value? {
        switch kind {
        case .text:
            return (json as? String).map(Value.text)
        case .choice(let names):
            guard let text = json as? String, names.contains(text) else { return nil }
            return .text(text)
        case .integer:
            guard let n = json as? NSNumber, !isBool(n), let i = Int(exactly: n.doubleValue) else { return nil }
            return .integer(i)
        case .duration:
            // A bare number of seconds, or a string with a unit ("500ms") as on the command line.
            if let n = json as? NSNumber, !isBool(n), n.doubleValue.isFinite { return .seconds(n.doubleValue) }
            guard let text = json as? String, let seconds = try? Durations.parseSeconds(text, bareUnit: .seconds) else {
                return nil
            }
            return .seconds(seconds)
        case .targets:
            // A list of "host:port" strings; one string is taken as a list of one.
            let texts = (json as? [Any]) ?? [json]
            var targets: [SenderTarget] = []
            for item in texts {
                guard let text = item as? String, let target = SenderTarget(parsing: text) else { return nil }
                targets.append(target)
            }
            return .targets(targets)
        }
    }

    /// What a flag's text gives, or nil when it cannot be a value of this key.
    func value(text: String) -> Value? {
        switch kind {
        case .text: return .text(text)
        case .choice(let names): return names.contains(text) ? .text(text) : nil
        case .integer: return Int(text).map(Value.integer)
        case .duration: return (try? Durations.parseSeconds(text, bareUnit: .seconds)).map(Value.seconds)
        case .targets:
            let targets = SenderTarget.list(text).map(SenderTarget.init(parsing:))
            return targets.contains(nil) ? nil : .targets(targets.compactMap { $0 })
        }
    }

    // MARK: declaring keys

    /// Help per tool: the key's flag exists only for the tools given.
    struct Flags {
        var sender: String?
        var receiver: String?
        static func both(_ help: String) -> Flags { Flags(sender: help, receiver: help) }
        static func sender(_ help: String) -> Flags { Flags(sender: help) }
        static func receiver(_ help: String) -> Flags { Flags(receiver: help) }

        var byTool: [Tool: String] {
            var help: [Tool: String] = [:]
            help[.sender] = sender
            help[.receiver] = receiver
            return help
        }
    }

    static func text(
        _ name: String, _ path: WritableKeyPath<BenchConfiguration, String> & Sendable, expected: String,
        flags: Flags, valid: @escaping @Sendable (String) -> Bool
    ) -> ConfigKey {
        ConfigKey(
            name: name, kind: .text, help: flags.byTool, readsOtherKeys: false,
            isValid: { valid($0[keyPath: path]) }, expected: { _ in expected },
            shown: { "\"\($0[keyPath: path])\"" }, jsonValue: { $0[keyPath: path] },
            write: { c, value in if case .text(let text) = value { c[keyPath: path] = text } })
    }

    static func integer(
        _ name: String, _ path: WritableKeyPath<BenchConfiguration, Int> & Sendable, flags: Flags,
        readsOtherKeys: Bool = false, range: @escaping @Sendable (BenchConfiguration) -> ClosedRange<Int>,
        expected: @escaping @Sendable (BenchConfiguration) -> String
    ) -> ConfigKey {
        ConfigKey(
            name: name, kind: .integer, help: flags.byTool, readsOtherKeys: readsOtherKeys,
            isValid: { range($0).contains($0[keyPath: path]) }, expected: expected,
            shown: { String($0[keyPath: path]) }, jsonValue: { $0[keyPath: path] },
            write: { c, value in if case .integer(let n) = value { c[keyPath: path] = n } })
    }

    static func duration(
        _ name: String, _ path: WritableKeyPath<BenchConfiguration, Double> & Sendable, _ rule: DurationRule,
        flags: Flags
    ) -> ConfigKey {
        ConfigKey(
            name: name, kind: .duration(rule), help: flags.byTool, readsOtherKeys: false,
            isValid: { rule.accepts($0[keyPath: path]) },
            expected: { _ in rule.expected + ", or with a unit: 500ms, 2s, 1m" },
            shown: { DurationRule.format($0[keyPath: path]) }, jsonValue: { $0[keyPath: path] },
            write: { c, value in if case .seconds(let s) = value { c[keyPath: path] = s } })
    }

    static func choice<Choice: RawRepresentable<String> & CaseIterable & Sendable>(
        _ name: String, _ path: WritableKeyPath<BenchConfiguration, Choice> & Sendable, flags: Flags
    ) -> ConfigKey {
        let names = Choice.allCases.map(\.rawValue)
        let expected = names.dropLast().joined(separator: ", ") + " or " + (names.last ?? "")
        return ConfigKey(
            name: name, kind: .choice(names), help: flags.byTool, readsOtherKeys: false,
            isValid: { _ in true },  // the type holds only valid values
            expected: { _ in expected }, shown: { "\"\($0[keyPath: path].rawValue)\"" },
            jsonValue: { $0[keyPath: path].rawValue },
            write: { c, value in
                if case .text(let text) = value, let choice = Choice(rawValue: text) { c[keyPath: path] = choice }
            })
    }
}

extension ConfigKey {
    /// A list of receivers as "host:port" strings.
    static func targets(
        _ name: String, _ path: WritableKeyPath<BenchConfiguration, [SenderTarget]> & Sendable, flag: String,
        flags: Flags
    ) -> ConfigKey {
        var key = ConfigKey(
            name: name, kind: .targets, help: flags.byTool, readsOtherKeys: false, isValid: { _ in true },
            expected: { _ in "a list of " + SenderTarget.expected },
            shown: { "[" + $0[keyPath: path].map { "\"\($0)\"" }.joined(separator: ", ") + "]" },
            jsonValue: { $0[keyPath: path].map(\.description) },
            write: { c, value in if case .targets(let targets) = value { c[keyPath: path] = targets } })
        key.flagName = flag
        return key
    }
}

/// JSONSerialization hands back booleans as NSNumber; their Objective-C type is "c" (char).
func isBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }
