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
