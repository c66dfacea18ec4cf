import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest


/// Echoes every byte; on end of input, finishes its output (half-close aware).
public final class EchoHandler: ChannelInboundHandler, Sendable {
    public init() {}
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    public func channelReadComplete(context: ChannelHandlerContext) { context.flush() }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // After the pending echoes are written (NIO would turn an output close on a channel
        // whose input is shut into a full close, dropping them).
        if case ChannelEvent.inputClosed = event {
            let channel = context.channel
            context.writeAndFlush(NIOAny(ByteBuffer())).whenComplete { _ in channel.close(mode: .output, promise: nil) }
        }
    }
}

public func startEchoServer(group: EventLoopGroup) async throws -> Channel {
    try await ServerBootstrap(group: group)
        .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(EchoHandler()) }
        }
        .bind(host: "127.0.0.1", port: 0).get()
}

/// A blocking-style test client over NIOAsyncChannel.
public struct TestClient: Sendable {
    public let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>

    public static func connect(to port: Int, group: EventLoopGroup) async throws -> TestClient {
        let channel = try await ClientBootstrap(group: group)
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                        wrappingChannelSynchronously: channel,
                        configuration: .init(isOutboundHalfClosureEnabled: true))
                }
            }
        return TestClient(channel: channel)
    }
}

/// Reads from an async inbound stream until `count` bytes or end of stream.
public func readBytes(
    _ iterator: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator, count: Int
) async throws -> ByteBuffer {
    var collected = ByteBuffer()
    while collected.readableBytes < count, var chunk = try await iterator.next() {
        collected.writeBuffer(&chunk)
    }
    return collected
}

public func withTimeout<T: Sendable>(
    _ seconds: Double, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
            throw CancellationError()
        }
        let result = try await group.next()!
        group.cancelAll()
        return result
    }
}

public func temporaryPath(_ name: String) -> String {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vtpbench-proxy-tests-\(getpid())")
    try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory.appendingPathComponent(name).path
}

public func logEvents(_ path: String) -> [[String: Any]] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
    return text.split(separator: "\n").compactMap {
        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
}

/// Sends an HTTP request to the control endpoint over a plain socket; returns (status, body).
public func httpRequest(port: Int, method: String, path: String, body: String = "", group: EventLoopGroup) async throws -> (Int, String) {
    let client = try await TestClient.connect(to: port, group: group)
    return try await client.channel.executeThenClose { inbound, outbound in
        let request = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        try await outbound.write(ByteBuffer(string: request))
        var text = ""
        for try await chunk in inbound { text += String(buffer: chunk) }
        let status = Int(text.split(separator: " ").dropFirst().first ?? "0") ?? 0
        let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        return (status, body)
    }
}

