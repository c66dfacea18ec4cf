import CommandLineKit
import NIOCore
import NIOPosix
import Protocol

/// One `--subscribe` broker: its `SubscriptionState`, run on one event loop. Its connections are
/// opened on that same loop, so the connection handler reaches the state directly: no messages
/// between loops, no lock. This class is a handle; everything it holds is loop-bound or immutable.
final class BrokerSubscription: Sendable {
    let broker: HostAndPort
    /// Its position among the `--subscribe` flags.
    let index: Int
    private let runtime: NIOLoopBoundBox<Runtime>
    private let shared: ReceiverIntake.Shared
    private let loopState: NIOLoopBoundBox<ReceiverLoopState>
    private let maxFrameSize: Int
    private let idleTimeout: TimeAmount
    private let output: @Sendable (String) -> Void

    private struct Runtime {
        var state: SubscriptionState
        /// The connection open or being opened (set before connecting, so `stop` can close it).
        var channel: Channel?
        var reconnect: Scheduled<Void>?
    }

    var eventLoop: EventLoop { runtime.eventLoop }

    init(
        broker: HostAndPort, index: Int, shared: ReceiverIntake.Shared, loopState: NIOLoopBoundBox<ReceiverLoopState>,
        maxFrameSize: Int, idleTimeout: TimeAmount, output: @escaping @Sendable (String) -> Void
    ) {
        self.broker = broker
        self.index = index
        self.shared = shared
        self.loopState = loopState
        self.maxFrameSize = maxFrameSize
        self.idleTimeout = idleTimeout
        self.output = output
        runtime = .makeBoxSendingValue(
            Runtime(state: SubscriptionState(localIVO: shared.receiverIVO)), eventLoop: loopState.eventLoop)
    }

    private static var now: Int64 { Int64(NIODeadline.now().uptimeNanoseconds) }

    func start() {
        runtime.eventLoop.execute { self.execute(self.runtime.value.state.start()) }
    }

    /// Closes the connection and never reconnects; completes once it is closed.
    func stop() -> EventLoopFuture<Void> {
        runtime.eventLoop.flatSubmit {
            let actions = self.runtime.withValue { runtime in
                runtime.reconnect?.cancel()
                runtime.reconnect = nil
                return runtime.state.stop()
            }
            guard actions.contains(.close), let channel = self.runtime.value.channel else {
                return self.runtime.eventLoop.makeSucceededVoidFuture()
            }
            channel.close(promise: nil)
            return channel.closeFuture
        }
    }

    /// What it did over the run, duplicates left to the home loop.
    func summary() -> EventLoopFuture<SubscriptionSummary> {
        runtime.eventLoop.submit {
            let state = self.runtime.value.state
            return SubscriptionSummary(
                broker: self.broker.description, events: state.events, duplicates: 0, connections: state.connections,
                connectFailures: state.connectFailures, disconnects: state.disconnects,
                silentDisconnects: state.silentDisconnects, untimedEvents: state.untimedEvents,
                iamalivesAnswered: state.iamalivesAnswered, authenticatesAnswered: state.authenticatesAnswered)
        }
    }

    // MARK: on the subscription's loop (its connection handler calls these)

    func connected(_ channel: Channel) {
        guard channel === runtime.value.channel else { return }  // a connection from before stop
        execute(runtime.value.state.connected(now: Self.now))
        output("vtp-receiver: subscribed to \(broker)")
    }

    /// The connection closed, or (`channel` nil) the connect failed.
    func closed(_ channel: Channel?, reason: String) {
        if let channel {
            guard channel === runtime.value.channel else { return }
        }
        runtime.value.channel = nil
        let wasConnected = runtime.value.state.isConnected
        let actions = runtime.value.state.closed(now: Self.now)
        for case .reconnect(let at) in actions {
            let wait = Human.duration(seconds: Double(max(0, at - Self.now)) / 1e9)
            shared.reportError(
                "broker \(broker): \(wasConnected ? "connection lost" : "cannot connect") (\(reason)); retrying in \(wait)")
        }
        execute(actions)
    }

    func received(_ message: SubscriptionState.Incoming, wallNanos: Int64) -> [SubscriptionState.Action] {
        runtime.value.state.received(message, wallNanos: wallNanos)
    }

    func silent() -> [SubscriptionState.Action] { runtime.value.state.silent() }

    /// Carries out the connection-level actions (the handler carries out the per-message ones).
    func execute(_ actions: [SubscriptionState.Action]) {
        for action in actions {
            switch action {
            case .connect: connect()
            case .close: runtime.value.channel?.close(promise: nil)
            case .reconnect(let at):
                let deadline = NIODeadline.uptimeNanoseconds(UInt64(max(0, at)))
                runtime.value.reconnect = runtime.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
                    self.runtime.value.reconnect = nil
                    self.execute(self.runtime.value.state.reconnectDue(now: Self.now))
                }
            case .record, .ack, .send:
                break  // per message: the connection handler's
            }
        }
    }

    private func connect() {
        let (shared, loopState, maxFrameSize, idleTimeout) = (shared, loopState, maxFrameSize, idleTimeout)
        ClientBootstrap(group: runtime.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    self.runtime.value.channel = channel
                    let sync = channel.pipeline.syncOperations
                    if idleTimeout > .zero { try sync.addHandler(IdleStateHandler(readTimeout: idleTimeout)) }
                    try sync.addHandler(ByteToMessageHandler(VTPFrameDecoder(maximumFrameSize: maxFrameSize)))
                    try sync.addHandler(
                        SubscriberConnectionHandler(
                            intake: ReceiverIntake(shared: shared, loop: loopState), subscription: self))
                }
            }
            .connect(host: broker.host, port: broker.port)
            .whenFailure { error in
                // Only a connect that never opened ends here; an open one reports its close.
                self.closed(nil, reason: ErrorText.describe(error))
            }
    }
}

/// One `--subscribe` broker in `vtp-receiver --summary-json` (`subscriptions`).
public struct SubscriptionSummary: Codable, Sendable, Equatable {
    public var broker: String
    /// Events it delivered (each acked).
    public var events: Int
    /// Of those, events whose ivorn had already arrived (through it or another broker).
    public var duplicates: Int
    public var connections: Int
    public var connectFailures: Int
    /// Open connections that closed or failed (each reopened after the back-off).
    public var disconnects: Int
    /// Of those, closed by us: the broker was silent past idle_timeout.
    public var silentDisconnects: Int
    /// Events acked without a readable send time: not in the statistics.
    public var untimedEvents: Int
    public var iamalivesAnswered: Int
    public var authenticatesAnswered: Int

    enum CodingKeys: String, CodingKey {
        case broker, events, duplicates, connections, disconnects
        case connectFailures = "connect_failures"
        case silentDisconnects = "silent_disconnects"
        case untimedEvents = "untimed_events"
        case iamalivesAnswered = "iamalive_answered"
        case authenticatesAnswered = "authenticate_answered"
    }
}
