import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// The per-event floor that SwiftNIO itself sets on this machine: the same connection life as
/// vtp-sender/vtp-receiver per-event (connect, one 1 KB frame, one ~600-byte frame back, close
/// from the client, close on EOF at the server) with no parsing, statistics or bookkeeping.
/// `scripts/bench-core` runs it beside the real tools so the per-event rows can be read against
/// what any NIO program pays per connection here.
enum PerEventFloor {
    /// A frame: a 4-byte big-endian length, then the payload (VTP's framing).
    static func frame(bytes: Int) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: 4 + bytes)
        buffer.writeInteger(UInt32(bytes))
        buffer.writeRepeatingByte(UInt8(ascii: "x"), count: bytes)
        return buffer
    }

    /// True once `buffer` holds a whole frame.
    static func holdsFrame(_ buffer: ByteBuffer) -> Bool {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return false }
        return UInt64(buffer.readableBytes) >= 4 + UInt64(length)
    }

    /// Listens on 127.0.0.1, prints the port, answers each frame with `reply`, until killed.
    static func serve(threads: Int) throws -> Never {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let reply = frame(bytes: 600)
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ServerHandler(reply: reply))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        // Unbuffered: the script waiting for this line reads it from a file.
        let line = "floor-server: listening on port \(channel.localAddress?.port ?? 0)\n"
        _ = line.withCString { write(1, $0, strlen($0)) }
        try channel.closeFuture.wait()
        exit(0)
    }

    /// Runs `events` connections, `concurrency` at a time, and prints events/s.
    static func run(port: Int, events: Int, concurrency: Int, threads: Int) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: port)
        let event = frame(bytes: 1024)
        let control = group.next()
        let done = control.makePromise(of: Void.self)
        let driver = NIOLoopBoundBox.makeBoxSendingValue(Driver(events: events, done: done), eventLoop: control)
        let start = NIODeadline.now()
        control.execute {
            let driverBox = driver
            @Sendable func connectOne() {
                let future = ClientBootstrap(group: group)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(ClientHandler(event: event))
                        }
                    }
                    .connect(to: address)
                future.whenComplete { result in
                    let closed: EventLoopFuture<Void>
                    switch result {
                    case .success(let channel): closed = channel.closeFuture
                    case .failure: closed = control.makeSucceededVoidFuture()
                    }
                    closed.hop(to: control).whenComplete { _ in
                        if driverBox.value.finishedOne(failed: (try? result.get()) == nil) { connectOne() }
                    }
                }
            }
            for _ in 0..<min(concurrency, events) {
                driver.value.started += 1
                connectOne()
            }
        }
        try done.futureResult.wait()
        let seconds = Double((NIODeadline.now() - start).nanoseconds) / 1e9
        let failed = try control.submit { driver.value.failed }.wait()
        print("floor-client: \(events - failed)/\(events) events in \(seconds) s: \(Int(Double(events - failed) / seconds)) events/s")
        try group.syncShutdownGracefully()
    }

    final class Driver {
        let events: Int
        let done: EventLoopPromise<Void>
        var started = 0
        var finished = 0
        var failed = 0
        init(events: Int, done: EventLoopPromise<Void>) {
            self.events = events
            self.done = done
        }
        /// Counts one connection's end; true when another should start.
        func finishedOne(failed: Bool) -> Bool {
            finished += 1
            if failed { self.failed += 1 }
            if finished == events { done.succeed(()) }
            guard started < events else { return false }
            started += 1
            return true
        }
    }

    final class ClientHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let event: ByteBuffer
        var received: ByteBuffer?
        init(event: ByteBuffer) { self.event = event }
        func channelActive(context: ChannelHandlerContext) {
            context.writeAndFlush(wrapOutboundOut(event), promise: nil)
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            if received == nil { received = bytes } else { received!.writeBuffer(&bytes) }
            if PerEventFloor.holdsFrame(received!) { context.close(promise: nil) }
        }
    }

    final class ServerHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let reply: ByteBuffer
        var received: ByteBuffer?
        var answered = false
        init(reply: ByteBuffer) { self.reply = reply }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            if received == nil { received = bytes } else { received!.writeBuffer(&bytes) }
            if !answered, PerEventFloor.holdsFrame(received!) {
                answered = true
                context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
            }
        }
        func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    }
}
