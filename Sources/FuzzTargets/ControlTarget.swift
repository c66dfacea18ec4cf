import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import ProxyCore

/// vtp-proxy's control endpoint on one connection: the handlers it installs (HTTP/1.1 parsing,
/// the token check, the body limit, routing and JSON bodies), in the mode that routes nothing,
/// with the bytes split at random points. Every request gets an answer or the connection closes.
enum ControlTarget {
    /// The seeds carry it in `Authorization: Bearer fuzz-token`.
    static let token = try! ControlToken("fuzz-token")

    static func run(_ bytes: UnsafeRawBufferPointer) {
        let input = SplitInput(bytes)
        let channel = EmbeddedChannel()
        do {
            try ControlServer.addHandlers(to: channel, token: token, listeners: nil)
        } catch {
            return FuzzCheck.expect(false, "the control handlers cannot be installed: \(error)")
        }
        for read in input.reads {
            do {
                try channel.writeInbound(read: read)
            } catch {
                break  // a parse error: answered 400 and closed by the pipeline
            }
            while (try? channel.readOutbound(as: ByteBuffer.self)) != nil {}
            if !channel.isActive { break }
        }
        // Closed by the handlers already, or now; then the loop's tasks (the idle timer, cancelled
        // or not) are dropped: an embedded loop keeps them, and they keep the channel alive.
        _ = try? channel.finish(acceptAlreadyClosed: true)
        try? channel.embeddedEventLoop.syncShutdownGracefully()
    }
}
