#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import AcceptGuard
import CommandLineKit
import NIOCore
import NIOHTTP1
import NIOPosix

/// Why `--metrics` could not be served: one line, exit status 2.
public struct MetricsServerError: Error, CustomStringConvertible, Equatable {
    public var address: MetricsAddress
    public var reason: String
    public var description: String { "cannot serve metrics on \(address): \(reason)" }
}

/// A small HTTP/1.1 server for `GET /metrics` (and `HEAD`), on the exporter's loop. Anything
/// else is answered 404 or 405. Each scrape reads the tool's numbers afresh.
public final class MetricsServer: Sendable {
    public let localAddress: SocketAddress
    private let channel: any Channel

    private init(channel: any Channel, localAddress: SocketAddress) {
        self.channel = channel
        self.localAddress = localAddress
    }

    /// Listens at `address` (port 0 picks a free port); fails with `MetricsServerError`.
    public static func start(at address: MetricsAddress, exporter: MetricsExporter) async throws(MetricsServerError)
        -> MetricsServer
    {
        do {
            let channel = try await ServerBootstrap(group: exporter.loop)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try AcceptGuard.install(on: channel, name: "metrics endpoint", report: StandardStreams.err)
                    }
                }
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(exporter: exporter))
                    }
                }
                .bind(host: address.host, port: address.port).get()
            guard let local = channel.localAddress else {
                try? await channel.close()
                throw MetricsServerError(address: address, reason: "the socket has no local address")
            }
            return MetricsServer(channel: channel, localAddress: local)
        } catch let error as MetricsServerError {
            throw error
        } catch {
            throw MetricsServerError(address: address, reason: Self.reason(error))
        }
    }

    /// The URL to scrape, for the tool's start line.
    public var url: String {
        let host = localAddress.ipAddress ?? "localhost"
        return "http://\(host.contains(":") ? "[\(host)]" : host):\(localAddress.port ?? 0)/metrics"
    }

    public func stop() async {
        try? await channel.close()
    }

    /// "address already in use", "unknown host nosuch.invalid": no NIO type names.
    static func reason(_ error: any Error) -> String {
        switch error {
        case let io as IOError:
            return String(cString: strerror(io.errnoCode)).lowercased()
        case let unknown as SocketAddressError.UnknownHost:
            return "unknown host \(unknown.host)"
        default:
            return "\(error)"
        }
    }
}

/// One HTTP connection. `HTTPServerPipelineHandler` (in the pipeline) holds further pipelined
/// requests until a response ends, so answers keep their order.
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let exporter: MetricsExporter
    private var head: HTTPRequestHead?

    init(exporter: MetricsExporter) { self.exporter = exporter }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break  // a scrape has none; anything else is ignored
        case .end:
            guard let head else { return }
            self.head = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard path == "/metrics" else {
            return send(.notFound, "not found: the metrics are at /metrics\n", to: head, context: context)
        }
        guard head.method == .GET || head.method == .HEAD else {
            return send(.methodNotAllowed, "only GET and HEAD\n", to: head, context: context)
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        exporter.scrape().hop(to: context.eventLoop).whenSuccess { body in
            let (handler, context) = bound.value
            handler.send(.ok, body, contentType: MetricsExporter.contentType, to: head, context: context)
        }
    }

    private func send(_ status: HTTPResponseStatus, _ text: String, to head: HTTPRequestHead, context: ChannelHandlerContext) {
        send(status, ByteBuffer(string: text), contentType: "text/plain; charset=utf-8", to: head, context: context)
    }

    private func send(
        _ status: HTTPResponseStatus, _ body: ByteBuffer, contentType: String, to head: HTTPRequestHead,
        context: ChannelHandlerContext
    ) {
        var headers = HTTPHeaders([("Content-Type", contentType), ("Content-Length", String(body.readableBytes))])
        let keepAlive = head.isKeepAlive
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }
}
