import Foundation

/// Errors a user can act on.
public enum DelayLinkError: Error, CustomStringConvertible, Equatable {
    case invalidSetting(String)
    case system(call: String, errno: Int32, hint: String)
    case command(String, status: Int32, output: String)
    case namespaceExists(String)

    public var description: String {
        switch self {
        case .invalidSetting(let message): return message
        case .system(let call, let code, let hint):
            return "\(call) failed: \(String(cString: strerrorText(code)))" + (hint.isEmpty ? "" : " (\(hint))")
        case .command(let command, let status, let output):
            let detail = output.trimmingCharacters(in: .whitespacesAndNewlines)
            return "`\(command)` exited with status \(status)" + (detail.isEmpty ? "" : ": \(detail)")
        case .namespaceExists(let name):
            return "network namespace \(name) already exists; pick another name or remove it (ip netns del \(name))"
        }
    }
}

func strerrorText(_ code: Int32) -> UnsafeMutablePointer<CChar> { strerror(code) }
