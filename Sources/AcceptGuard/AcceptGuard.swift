#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

/// What every listening socket needs when it runs out of descriptors. NIO keeps a server
/// channel open when accept fails with EMFILE/ENFILE (its classic `bind` adds no back-off),
/// and the still-pending connection makes epoll wake it at once: it spins at 100% CPU,
/// failing accept after accept. The guard pauses accepting for `backoff` after each failure,
/// reports the first failure of an episode in one line and its end in another, and keeps the
/// connections already open served.
public enum AcceptGuard {
    /// Long enough to let connections close, short enough that a listener recovers quickly.
    public static let backoff = TimeAmount.milliseconds(250)

    /// Adds the back-off and the report to a server channel's pipeline (on its event loop,
    /// e.g. in `serverChannelInitializer`). `report` gets one line when accepting starts failing
    /// and one when it succeeds again, with how many accepts failed in between.
    public static func install(on channel: Channel, name: String, report: @escaping @Sendable (String) -> Void) throws {
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(AcceptFailureReporter(name: name, report: report))
        try sync.addHandler(
            AcceptBackoffHandler(shouldForwardIOErrorCaught: false) { error in
                AcceptFailureReporter.isResourceExhaustion(error.errnoCode) ? backoff : nil
            })
    }
}

/// Sits in front of NIO's `AcceptBackoffHandler`: sees every accepted channel and every accept
/// error first, and turns them into episodes.
final class AcceptFailureReporter: ChannelInboundHandler {
    typealias InboundIn = Channel

    /// Accepts failing since the episode began (0: accepting normally).
    private(set) var failures = 0
    private var episodeStart: NIODeadline?
    private let name: String
    private let report: @Sendable (String) -> Void

    init(name: String, report: @escaping @Sendable (String) -> Void) {
        self.name = name
        self.report = report
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if failures > 0, let start = episodeStart {
            let seconds = Double((NIODeadline.now() - start).nanoseconds) / 1e9
            report(
                "\(name): accepting connections again after \(failures) failed accepts over "
                    + "\(Int(seconds.rounded())) s")
            failures = 0
            episodeStart = nil
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let io = error as? IOError, Self.isResourceExhaustion(io.errnoCode) {
            failures += 1
            if failures == 1 {
                episodeStart = .now()
                report(
                    "\(name): cannot accept connections: \(Self.describe(io.errnoCode)); pausing accepts "
                        + "(\(AcceptGuard.backoff.nanoseconds / 1_000_000) ms back-off), open connections are still served"
                        + (io.errnoCode == EMFILE ? "; raise the limit (ulimit -n) if this is real load" : ""))
            }
        }
        context.fireErrorCaught(error)
    }

    static func isResourceExhaustion(_ code: CInt) -> Bool {
        code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM
    }

    static func describe(_ code: CInt) -> String {
        switch code {
        case EMFILE: return "the process's open-file limit is reached (EMFILE)"
        case ENFILE: return "the system's open-file limit is reached (ENFILE)"
        default: return "out of kernel memory (\(String(cString: strerror(code))))"
        }
    }
}
