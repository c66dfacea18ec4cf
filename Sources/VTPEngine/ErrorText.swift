#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CommandLineKit
import NIOCore
import NIOPosix

/// The one place where socket and NIO errors become words a user can act on ("connection
/// refused", "unknown host nosuch.invalid") — no NIO type names, syscall signatures or
/// `(error -2)` — and where a failed connect is given its cause.
public enum ErrorText {
    public static func describe(_ error: Error) -> String {
        switch error {
        case let io as IOError:
            return sentence(strerror(io.errnoCode))
        case let connect as NIOConnectionError:
            // A connect error says more than a failed lookup of the other address family.
            if let first = connect.connectionErrors.first { return describe(first.error) }
            if let dns = connect.dnsAError ?? connect.dnsAAAAError { return describe(dns) }
            return "cannot connect to \(connect.host):\(connect.port)"
        case let unknown as SocketAddressError.UnknownHost:
            return "unknown host \(unknown.host) (\(sentence(unknown.errorDescription)))"
        case let channel as ChannelError:
            return describe(channel)
        default:
            return UserMessage.describe(error)
        }
    }

    /// The cause a failed connect is counted under in reports and summaries.
    public static func connectFailure(_ error: Error) -> ConnectionFailure {
        switch error {
        case let connect as NIOConnectionError:
            if let first = connect.connectionErrors.first { return connectFailure(first.error) }
            return (connect.dnsAError ?? connect.dnsAAAAError) != nil ? .unknownHost : .connectError
        case is SocketAddressError.UnknownHost: return .unknownHost
        case let io as IOError where io.errnoCode == ECONNREFUSED: return .refused
        // The handshake completed in the peer's kernel, then the listener died (or dropped its
        // queue) before the connect was seen through: the target reset the connection.
        case let io as IOError where io.errnoCode == ECONNRESET: return .closedBeforeAck
        case ChannelError.connectTimeout: return .connectTimeout
        default: return .connectError
        }
    }

    private static func describe(_ error: ChannelError) -> String {
        switch error {
        case .connectTimeout(let t): return "connect timed out after \(Human.duration(seconds: Double(t.nanoseconds) / 1e9))"
        case .eof: return "connection closed by the peer"
        case .ioOnClosedChannel, .alreadyClosed: return "connection already closed"
        case .outputClosed: return "connection closed for writing"
        case .inputClosed: return "connection closed for reading"
        case .writeHostUnreachable: return "host unreachable"
        default: return "connection error: " + sentence(error.description)
        }
    }

    /// "Connection refused" → "connection refused": these are read mid-sentence.
    private static func sentence(_ text: UnsafeMutablePointer<CChar>?) -> String {
        guard let text else { return "unknown error" }
        return sentence(String(cString: text))
    }

    private static func sentence(_ text: String) -> String {
        guard let first = text.first, first.isUppercase, !(text.dropFirst().first?.isUppercase ?? false) else { return text }
        return first.lowercased() + text.dropFirst()
    }
}
