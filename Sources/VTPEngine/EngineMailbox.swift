import NIOCore

/// A run's engine: owned by its control loop, told what happens by connection handlers on any loop.
protocol MessageDriven: AnyObject, SendableMetatype {
    associatedtype Message: Sendable
    func receive(_ message: Message)
}

/// How a connection handler reaches its engine: each message is handled on the control loop.
struct EngineMailbox<Engine: MessageDriven>: Sendable {
    let engine: NIOLoopBoundBox<Engine>

    func post(_ message: Engine.Message) {
        // A connection on the control loop itself is handled at once, still in order.
        if engine.eventLoop.inEventLoop {
            engine.value.receive(message)
        } else {
            let engine = engine
            engine.eventLoop.execute { engine.value.receive(message) }
        }
    }
}

extension SenderEngine: MessageDriven {}
extension BroadcastEngine: MessageDriven {}

typealias SenderMailbox = EngineMailbox<SenderEngine>
typealias BroadcastMailbox = EngineMailbox<BroadcastEngine>

extension SenderOptions {
    /// The summary JSON's `settings` every sender run shares: the schedule, the events, the
    /// window and the time-outs.
    func scheduleSettings(eventSize: Int, runID: String) -> [String: Any] {
        let c = configuration
        var settings: [String: Any] = [
            "events": c.events, "period_s": c.period, "window": c.window, "event_size": eventSize,
            "event_size_requested": c.eventSize, "ack_timeout_s": c.ackTimeout, "drain_timeout_s": c.drainTimeout,
            "event_run_id": runID,
        ]
        // Events per second as scheduled; all at once has no rate.
        settings["rate"] = c.period > 0 ? Double(c.events) / c.period : nil
        return settings
    }
}
