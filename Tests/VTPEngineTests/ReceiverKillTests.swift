import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Protocol
import XCTest

/// What failover reconciliation relies on: an event vtp-receiver acked is in its
/// `--events-csv` even when the process is SIGKILLed right after the ack.
final class ReceiverKillTests: XCTestCase {
    func testEveryAckedEventIsInTheEventsCSVAfterSIGKILL() throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("vtp-receiver")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw XCTSkip("vtp-receiver not built beside the tests")
        }
        // The CSV is a pipe the test reads only after the kill: once its buffer is full the
        // receiver cannot write rows, so it must stop acking. What the pipe holds at the kill is
        // exactly what a file would hold.
        let csv = FileManager.default.temporaryDirectory.appendingPathComponent("vtp-kill-\(UUID()).csv").path
        XCTAssertEqual(mkfifo(csv, 0o600), 0)
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let reader = open(csv, O_RDONLY | O_NONBLOCK)
        XCTAssertGreaterThanOrEqual(reader, 0)
        defer { close(reader) }
        let receiver = Process()
        receiver.executableURL = binary
        receiver.arguments = ["--port", "0", "--events-csv", csv, "--report-interval", "60"]
        let output = Pipe()
        receiver.standardOutput = output
        receiver.standardError = FileHandle.nullDevice
        try receiver.run()
        addTeardownBlock { if receiver.isRunning { kill(receiver.processIdentifier, SIGKILL) } }
        let port = try XCTUnwrap(Self.listeningPort(output.fileHandleForReading), "the receiver says where it listens")

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let builder = TestEventBuilder(localIVO: "ivo://kill.test/sender", eventSize: 0)
        let client = try RawClient.connect(group: group, port: port)
        // Keep events flowing while acks are counted, so the kill lands mid-stream.
        let sending = NIOLockedValueBox(true)
        let sender = Thread {
            var sequence: UInt64 = 0
            while sending.withLockedValue({ $0 }) && sequence < 20_000 {
                var buffer = ByteBuffer()
                for _ in 0..<50 {
                    builder.writeFramedDocument(sequence: sequence, sentNanos: WallClock.nowNanos(), into: &buffer)
                    sequence += 1
                }
                guard (try? client.send(Array(buffer.readableBytesView))) != nil else { return }
            }
        }
        sender.start()
        // Until the acks stop (the pipe is full) or plenty came (they did not wait for rows).
        var acked: Set<String> = []
        while acked.count < 5_000, let frame = try? client.readFrame(timeout: 1) {
            if case .transport(let ack) = try VTPMessage.parse(frame), ack.role == .ack { acked.insert(ack.origin) }
        }
        kill(receiver.processIdentifier, SIGKILL)
        receiver.waitUntilExit()
        sending.withLockedValue { $0 = false }
        // Acks already in flight before the kill count too: read until the stream ends.
        while let frame = try? client.readFrame(timeout: 0.5) {
            if case .transport(let ack) = try VTPMessage.parse(frame), ack.role == .ack { acked.insert(ack.origin) }
        }
        client.close()

        XCTAssertGreaterThan(acked.count, 100, "events were acked before the pipe filled")
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while case let n = read(reader, &chunk, chunk.count), n > 0 { bytes += chunk[0..<n] }
        let rows = String(decoding: bytes, as: UTF8.self).split(separator: "\n").dropFirst()
        // The last row may be cut short by the kill: its ivorn then matches nothing.
        let inFile = Set(rows.compactMap { $0.split(separator: ",").dropFirst().first.map(String.init) })
        let missing = acked.subtracting(inFile)
        XCTAssertEqual(missing.count, 0, "acked but not in the CSV: \(missing.sorted().prefix(5))")
    }

    /// The port from "vtp-receiver: listening on HOST:PORT".
    private static func listeningPort(_ handle: FileHandle) -> Int? {
        var text = ""
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let data = handle.availableData
            if data.isEmpty { return nil }
            text += String(decoding: data, as: UTF8.self)
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("vtp-receiver: listening on") }) {
                return line.split(separator: ":").last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            }
        }
        return nil
    }
}
