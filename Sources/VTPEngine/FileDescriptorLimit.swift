#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's open-file limit (RLIMIT_NOFILE) against the connections a run needs:
/// past it every further connect fails with EMFILE, which looks like a broken receiver.
public enum FileDescriptorLimit {
    /// Descriptors besides the connections: stdio, event loops (epoll, eventfd, timerfd
    /// per thread), the summary file, and some slack.
    public static let reserve = 64

    public enum Outcome: Equatable, Sendable {
        case sufficient
        /// The soft limit was below `needed` and was raised to it.
        case raised(from: UInt64, to: UInt64)
    }

    public struct TooLow: Error, CustomStringConvertible, Equatable {
        public var connections: Int
        public var needed: UInt64
        public var hardLimit: UInt64
        public var description: String {
            "\(connections) simultaneous connections need about \(needed) open files, but the hard limit "
                + "(RLIMIT_NOFILE) is \(hardLimit): lower --max-connect or raise the limit (ulimit -n)"
        }
    }

    /// Makes room for `connections` simultaneous connections, raising the soft limit
    /// (which needs no privilege up to the hard limit) if necessary.
    public static func ensure(connections: Int) throws -> Outcome {
        let needed = UInt64(max(0, connections)) + UInt64(reserve)
        var limit = rlimit()
        guard getrlimit(resourceNOFILE, &limit) == 0 else { return .sufficient }  // cannot tell: try anyway
        let soft = UInt64(limit.rlim_cur)
        let hard = UInt64(limit.rlim_max)
        if limit.rlim_cur == unlimited || soft >= needed { return .sufficient }
        guard limit.rlim_max == unlimited || hard >= needed else {
            throw TooLow(connections: connections, needed: needed, hardLimit: hard)
        }
        limit.rlim_cur = rlim_t(needed)
        guard setrlimit(resourceNOFILE, &limit) == 0 else {
            throw TooLow(connections: connections, needed: needed, hardLimit: soft)
        }
        return .raised(from: soft, to: needed)
    }

    /// For a listener, which cannot know how many peers will come: the soft limit raised to the
    /// hard limit (no privilege needed), so thousands of simultaneous connections are accepted
    /// rather than refused with EMFILE. nil when the limit cannot be read or set.
    public static func raiseToHardLimit() -> Outcome? {
        var limit = rlimit()
        guard getrlimit(resourceNOFILE, &limit) == 0 else { return nil }
        guard limit.rlim_cur != unlimited, limit.rlim_cur < limit.rlim_max else { return .sufficient }
        let soft = UInt64(limit.rlim_cur)
        limit.rlim_cur = limit.rlim_max
        guard setrlimit(resourceNOFILE, &limit) == 0 else { return nil }
        return .raised(from: soft, to: limit.rlim_max == unlimited ? UInt64.max : UInt64(limit.rlim_max))
    }

    /// The soft limit now (nil if it cannot be read; UInt64.max when unlimited).
    public static var current: UInt64? {
        var limit = rlimit()
        guard getrlimit(resourceNOFILE, &limit) == 0 else { return nil }
        return limit.rlim_cur == unlimited ? UInt64.max : UInt64(limit.rlim_cur)
    }

    #if canImport(Glibc)
    private static let resourceNOFILE = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    /// RLIM_INFINITY, ((rlim_t) -1), is a macro Swift cannot import.
    private static let unlimited = rlim_t.max
    #else
    private static let resourceNOFILE = RLIMIT_NOFILE
    private static let unlimited = RLIM_INFINITY
    #endif
}
