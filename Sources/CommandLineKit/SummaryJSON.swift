import Foundation

/// Writes a tool's final summary: the summary's own keys, the run's metadata (`run_id`,
/// `version`, `host`, `started_at`) and `settings` (what shaped the run), pretty-printed with
/// sorted keys, atomically. One writer for every tool.
public enum SummaryJSON {
    public struct WriteError: Error, CustomStringConvertible {
        public var path: String
        public var reason: String
        public var description: String { "cannot write \(path): \(reason)" }
    }

    public static func object<T: Encodable>(
        _ summary: T, metadata: RunMetadata? = nil, settings: [String: Any]? = nil
    ) throws -> [String: Any] {
        let data = try JSONEncoder().encode(summary)
        var object = (try JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        if let metadata {
            object["run_id"] = metadata.run_id
            object["version"] = metadata.version
            object["host"] = metadata.host
            object["started_at"] = metadata.started_at
        }
        if let settings { object["settings"] = settings }
        return object
    }

    public static func write<T: Encodable>(
        _ summary: T, metadata: RunMetadata? = nil, settings: [String: Any]? = nil, to path: String
    ) throws(WriteError) {
        do {
            let object = try object(summary, metadata: metadata, settings: settings)
            try writeObject(object, to: path)
        } catch let error as WriteError {
            throw error
        } catch {
            throw WriteError(path: path, reason: UserMessage.describe(error))
        }
    }

    public static func writeObject(_ object: Any, to path: String) throws(WriteError) {
        do {
            var data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            data.append(0x0A)
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw WriteError(path: path, reason: UserMessage.describe(error))
        }
    }
}

/// Error text a user can act on: no Swift type names, no `(error -2)`.
public enum UserMessage {
    public static func describe(_ error: any Error) -> String {
        switch error {
        case let decoding as DecodingError:
            return describe(decoding)
        case let encoding as EncodingError:
            if case .invalidValue(_, let context) = encoding { return context.debugDescription }
            return "cannot encode the value"
        case let custom as CustomStringConvertible where !(type(of: error) is NSError.Type):
            // Our own errors (and most libraries') describe themselves for users.
            return custom.description
        default:
            let nsError = error as NSError
            if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError,
                underlying.domain == NSPOSIXErrorDomain
            {
                return String(cString: strerror(Int32(underlying.code)))
            }
            return nsError.localizedDescription
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return keys.isEmpty ? "" : " at " + keys.joined(separator: ".")
        }
        switch error {
        case .dataCorrupted(let context):
            if let underlying = context.underlyingError as NSError?,
                let detail = underlying.userInfo[NSDebugDescriptionErrorKey] as? String
            {
                return "not valid JSON\(path(context)): \(detail)"
            }
            return "not valid JSON\(path(context)): \(context.debugDescription)"
        case .keyNotFound(let key, let context):
            return "missing key \"\(key.stringValue)\"\(path(context))"
        case .typeMismatch(let type, let context):
            return "wrong type\(path(context)): expected \(type)"
        case .valueNotFound(let type, let context):
            return "missing value\(path(context)): expected \(type)"
        @unknown default:
            return "not valid JSON"
        }
    }
}
