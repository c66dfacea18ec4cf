import Foundation

/// Where runs are stored: an SQLite file (the embedded default) or a shared PostgreSQL collector.
public enum StoreTarget: Sendable, Equatable, CustomStringConvertible {
    case sqlite(path: String)
    case collector(CollectorURL)

    public static let defaultPath = "./vtpbench-results.sqlite"
    public static let environmentVariable = "VTPBENCH_STORE"

    /// `postgresql://…` or `postgres://…` is a collector; anything else a file path.
    public init(parsing text: String) throws(StoreError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { throw .badTarget("an empty store; give a file path or a postgresql:// URL") }
        if CollectorURL.looksLikeURL(trimmed) {
            self = .collector(try CollectorURL(parsing: trimmed))
        } else {
            self = .sqlite(path: trimmed)
        }
    }

    /// `--store`, else `$VTPBENCH_STORE`, else `./vtpbench-results.sqlite`.
    public static func resolve(flag: String?, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(StoreError) -> StoreTarget
    {
        if let flag { return try StoreTarget(parsing: flag) }
        if let value = environment[environmentVariable], !value.isEmpty {
            do { return try StoreTarget(parsing: value) } catch { throw .badTarget("\(environmentVariable): \(error)") }
        }
        return .sqlite(path: defaultPath)
    }

    /// Printable: a collector without its password.
    public var description: String {
        switch self {
        case .sqlite(let path): return path
        case .collector(let url): return url.redacted
        }
    }
}

/// `postgresql://user[:password]@host[:port]/database[?sslmode=disable|prefer|require]`.
/// Without a password in the URL, `PGPASSWORD` is used (as libpq does).
public struct CollectorURL: Sendable, Equatable {
    public enum TLSMode: String, Sendable { case disable, prefer, require }

    public var user: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String
    public var tls: TLSMode
    /// The text as given (with its password): what `vtp-report push --to` is handed.
    public var text: String

    static func looksLikeURL(_ text: String) -> Bool {
        let lower = text.lowercased()
        return lower.hasPrefix("postgresql://") || lower.hasPrefix("postgres://") || lower.contains("://")
    }

    public init(parsing text: String, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(StoreError)
    {
        func bad(_ why: String) -> StoreError { .badTarget("\(Self.redact(text)): \(why)") }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            throw bad("not a URL; expected postgresql://user@host:port/database")
        }
        guard scheme == "postgresql" || scheme == "postgres" else {
            throw bad("only postgresql:// collectors are supported (or give a file path for SQLite)")
        }
        guard let host = components.host, !host.isEmpty else { throw bad("no host; expected postgresql://user@host/database") }
        guard let user = components.user, !user.isEmpty else { throw bad("no user; expected postgresql://user@host/database") }
        let port = components.port ?? 5432
        guard (1...65535).contains(port) else { throw bad("port \(port) is out of range") }
        let database = String(components.path.drop(while: { $0 == "/" }))
        var tls = TLSMode.prefer
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let value = item.value, let mode = TLSMode(rawValue: value == "allow" ? "prefer" : value) else {
                    throw bad("sslmode must be disable, prefer or require (got \(item.value ?? ""))")
                }
                tls = mode
            default:
                throw bad("unknown parameter \(item.name) (only sslmode is understood)")
            }
        }
        self.user = user
        self.password = components.password ?? environment["PGPASSWORD"]
        self.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        self.port = port
        self.database = database.isEmpty ? user : database
        self.tls = tls
        self.text = text
    }

    /// `postgresql://alice@db.example:5432/vtpbench` (never the password).
    public var redacted: String {
        let address = host.contains(":") ? "[\(host)]" : host
        return "postgresql://\(user)@\(address):\(port)/\(database)"
    }

    static func redact(_ text: String) -> String {
        guard var components = URLComponents(string: text), components.password != nil else { return text }
        components.password = "***"
        return components.string ?? "the collector URL"
    }
}

/// `--tag key=value`: keys are letters, digits, `_`, `-` and `.`; values anything non-empty.
public enum RunTags {
    public static func parse(_ text: String) throws(StoreError) -> (key: String, value: String) {
        guard let equals = text.firstIndex(of: "=") else {
            throw .badTag("--tag \(text): expected key=value, e.g. --tag site=lab2")
        }
        let key = String(text[..<equals])
        let value = String(text[text.index(after: equals)...])
        guard !key.isEmpty,
            key.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || "_-.".unicodeScalars.contains($0) })
        else {
            throw .badTag("--tag \(text): the key must be letters, digits, _, - or . (e.g. --tag max_connect=30)")
        }
        guard !value.isEmpty else { throw .badTag("--tag \(text): no value after '=' (e.g. --tag \(key)=30)") }
        return (key, value)
    }

    /// Every well-formed tag, and one message per malformed one (the caller prints them and
    /// stores the run without those).
    public static func parseAll(_ texts: [String]) -> (tags: [String: String], problems: [StoreError]) {
        var tags: [String: String] = [:]
        var problems: [StoreError] = []
        for text in texts {
            do {
                let (key, value) = try parse(text)
                tags[key] = value
            } catch {
                problems.append(error)
            }
        }
        return (tags, problems)
    }

    /// Filters (`vtp-report list --tag`): a malformed one is a usage error.
    public static func parseFilter(_ texts: [String]) throws(StoreError) -> [String: String] {
        var tags: [String: String] = [:]
        for text in texts {
            let (key, value) = try parse(text)
            tags[key] = value
        }
        return tags
    }
}

/// Everything that can go wrong with a store, each a line a user can act on.
public enum StoreError: Error, CustomStringConvertible, Equatable {
    case badTarget(String)
    case badTag(String)
    /// The file exists but is no SQLite database, or not ours.
    case foreignFile(path: String, reason: String)
    /// Written by a newer vtpbench: its schema version is beyond what this one knows.
    case newerSchema(store: String, found: Int, known: Int)
    case cannotOpen(store: String, reason: String)
    case unreachable(store: String, reason: String)
    case unauthorised(store: String, reason: String)
    case failed(store: String, reason: String)
    case unknownRun(String, store: String)
    case ambiguousRun(String, matches: Int, store: String)

    public var description: String {
        switch self {
        case .badTarget(let why): return "--store \(why)"
        case .badTag(let why): return why
        case .foreignFile(let path, let reason): return "\(path) is not a vtpbench results store: \(reason)"
        case .newerSchema(let store, let found, let known):
            return "\(store) was written by a newer vtpbench (schema version \(found); this one knows up to \(known)); use a newer vtp-report or another --store"
        case .cannotOpen(let store, let reason): return "cannot open \(store): \(reason)"
        case .unreachable(let store, let reason): return "collector \(store) is unreachable: \(reason)"
        case .unauthorised(let store, let reason): return "collector \(store) refused this tester: \(reason)"
        case .failed(let store, let reason): return "\(store): \(reason)"
        case .unknownRun(let id, let store): return "no run \(id) in \(store) (vtp-report list shows the runs)"
        case .ambiguousRun(let id, let matches, let store):
            return "\(id) matches \(matches) runs in \(store); give more of the run id"
        }
    }
}
