#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

/// What every listening socket needs when it runs out of descriptors. NIO keeps a server
/// channel open when accept fails with EMFILE/ENFILE, and the connection still waiting in the
/// backlog keeps epoll reporting the socket readable: measured, vtp-receiver spun at 100% CPU
/// failing ~45,000 accepts a second. NIO's `AcceptBackoffHandler` does not stop that (it delays
/// `read()` calls, but after a failed accept the channel still counts a read as pending and stays
/// registered). The guard turns the channel's auto-read off for `backoff` after a failure,
/// which unregisters it from epoll; it reports the first failure of an episode in one line and
/// its end (no failure for 2 s) in another, and the connections already open are served throughout.
public enum AcceptGuard {
    /// Long enough to let connections close, short enough that a listener recovers quickly.
    public static let backoff = TimeAmount.milliseconds(250)

    /// Adds the guard to a server channel's pipeline (on its event loop, e.g. in
    /// `serverChannelInitializer`). `report` gets one line when accepting starts failing and one
    /// when it succeeds again, with how many accepts failed in between; `name` starts each line
    /// (empty: none, for a logger that names the tool itself).
    public static func install(on channel: Channel, name: String, report: @escaping @Sendable (String) -> Void) throws {
        try channel.pipeline.syncOperations.addHandler(AcceptGuardHandler(name: name, report: report))
    }
}

/// Sees every accept error of a server channel, on its loop.
final class AcceptGuardHandler: ChannelInboundHandler {
    typealias InboundIn = Channel

    /// An episode ends once no accept has failed for this long: a listener at its limit fails
    /// again after every connection it manages to accept, and that must not be a new episode
    /// (and two more lines) each time.
    static let quietPeriod = TimeAmount.seconds(2)

    /// Accepts failed since the episode began (0: accepting normally).
    private(set) var failures = 0
    private var episodeStart = NIODeadline.distantPast
    private var lastFailure = NIODeadline.distantPast
    /// Accepting is paused until this task turns auto-read back on.
    private var resume: Scheduled<Void>?
    /// Checks every second whether the episode is over.
    private var watch: RepeatedTask?
    private let prefix: String
    private let report: @Sendable (String) -> Void

    init(name: String, report: @escaping @Sendable (String) -> Void) {
        prefix = name.isEmpty ? "" : name + ": "
        self.report = report
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard let io = error as? IOError, Self.isResourceExhaustion(io.errnoCode) else {
            context.fireErrorCaught(error)
            return
        }
        failures += 1
        lastFailure = context.eventLoop.now
        if failures == 1 {
            episodeStart = lastFailure
            report(
                "\(prefix)cannot accept connections: \(Self.describe(io.errnoCode)); pausing accepts "
                    + "(\(AcceptGuard.backoff.nanoseconds / 1_000_000) ms back-off), open connections are still served"
                    + (io.errnoCode == EMFILE ? "; raise the limit (ulimit -n) if this is real load" : ""))
            let (handler, loop) = (NIOLoopBound(self, eventLoop: context.eventLoop), context.eventLoop)
            watch = loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { task in
                handler.value.endEpisodeIfQuiet(task, now: loop.now)
            }
        }
        pause(context)
    }

    private func endEpisodeIfQuiet(_ task: RepeatedTask, now: NIODeadline) {
        guard now - lastFailure >= Self.quietPeriod else { return }
        task.cancel()
        watch = nil
        let seconds = Double((lastFailure - episodeStart).nanoseconds) / 1e9
        report("\(prefix)accepting connections again after \(failures) failed accepts over \(Int(seconds.rounded(.up))) s")
        failures = 0
    }

    /// Auto-read off (the channel leaves epoll), back on after the back-off.
    private func pause(_ context: ChannelHandlerContext) {
        guard resume == nil, let options = context.channel.syncOptions else { return }
        try? options.setOption(.autoRead, value: false)
        let channel = context.channel
        resume = context.eventLoop.assumeIsolated().scheduleTask(in: AcceptGuard.backoff) { [weak self] in
            self?.resume = nil
            try? channel.syncOptions?.setOption(.autoRead, value: true)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        resume?.cancel()
        resume = nil
        watch?.cancel()
        watch = nil
        context.fireChannelInactive()
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
