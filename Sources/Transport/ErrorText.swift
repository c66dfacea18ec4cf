#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOPosix

/// Turns socket errors into the words a user can act on ("Connection refused"),
/// without NIO's syscall signature.
public enum ErrorText {
    public static func describe(_ error: Error) -> String {
        if let io = error as? IOError { return String(cString: strerror(io.errnoCode)) }
        if let connect = error as? NIOConnectionError {
            if let first = connect.connectionErrors.first { return describe(first.error) }
            if let dns = connect.dnsAError ?? connect.dnsAAAAError { return describe(dns) }
            return "cannot connect to \(connect.host):\(connect.port)"
        }
        if let unknown = error as? SocketAddressError.UnknownHost {
            return "cannot resolve host \(unknown.host): \(unknown.errorDescription)"
        }
        if let channel = error as? ChannelError {
            switch channel {
            case .connectTimeout(let t): return "connect timed out after \(Double(t.nanoseconds) / 1e9)s"
            default: return "\(channel)"
            }
        }
        return "\(error)"
    }
}
