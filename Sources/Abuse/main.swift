import AbuseCore
import ArgumentParser
import CommandLineKit
import Foundation
import NIOPosix
import Synchronization
import VTPEngine

/// vtp-abuse: hostile clients against a VTP listener (vtp-receiver, or vtp-proxy in front of one).
@main
struct VTPAbuse: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vtp-abuse",
        abstract: "Hostile clients against a VTP listener: slowloris, trickled and stalled frames, floods, disconnects.",
        discussion: """
            Every kind given runs at once until --duration or SIGINT/SIGTERM, then every connection is
            closed and the counts printed. Run a real vtp-sender beside it: every event must still be
            acked (scripts/abuse does, for vtp-receiver and vtp-proxy, and prints their memory).
            Example: vtp-abuse --target 127.0.0.1:8098 --silent 10000 --trickle 100 --stalled-frames 100 --duration 30s
            Exit status: 0 done, 2 nothing could connect, 64 bad flags.
            """,
        version: VTPBenchVersion.string)

    @Option(help: "The listener, HOST:PORT.") var target: String
    @Option(parsing: .unconditional, help: "Connections that never send a byte.") var silent = 0
    @Option(parsing: .unconditional, help: "Connections that send an event one byte a second.") var trickle = 0
    @Option(
        name: .customLong("stalled-frames"), parsing: .unconditional,
        help: "Connections that announce a 1 MiB frame, send 1 KiB of it, then nothing.")
    var stalledFrames = 0
    @Option(parsing: .unconditional, help: "Connections opened as fast as possible and held (to pass the target's descriptor limit).")
    var flood = 0
    @Option(
        name: .customLong("disconnects-per-second"), parsing: .unconditional,
        help: "Connections per second that send part of a frame and close (half with a reset).")
    var disconnectsPerSecond = 0
    @Option(
        name: .customLong("connects-per-second"), parsing: .unconditional,
        help: "Pace of the silent, trickle and stalled connections.")
    var connectsPerSecond = 2_000
    @Option(parsing: .unconditional, help: "How long; a bare number is seconds (30, 500ms, 2m).") var duration = SecondsArgument(seconds: 30)
    @Option(
        name: .customLong("report-interval"), parsing: .unconditional, help: "Time between progress lines (bare number: seconds).")
    var reportInterval = SecondsArgument(seconds: 5)
    @Option(name: .customLong("summary-json"), help: "Write the final counts here.") var summaryJSON: String?

    func validate() throws {
        for (flag, value) in [
            ("--silent", silent), ("--trickle", trickle), ("--stalled-frames", stalledFrames), ("--flood", flood),
            ("--disconnects-per-second", disconnectsPerSecond),
        ] where value < 0 {
            throw ValidationError("\(flag) must be at least 0 (got \(value))")
        }
        guard connectsPerSecond >= 1 else {
            throw ValidationError("--connects-per-second must be at least 1 (got \(connectsPerSecond))")
        }
        guard disconnectsPerSecond <= 100_000 else {
            throw ValidationError("--disconnects-per-second must be at most 100000 (got \(disconnectsPerSecond))")
        }
        guard duration.seconds > 0 else { throw ValidationError("--duration must be more than 0") }
        guard reportInterval.seconds >= 0.1 else { throw ValidationError("--report-interval must be at least 100ms") }
    }

    func run() async throws {
        let (host, port) = try Self.hostPort(target)
        try checkOutput()
        var plan = AbusePlan(host: host, port: port)
        plan.silent = silent
        plan.trickle = trickle
        plan.stalledFrames = stalledFrames
        plan.flood = flood
        plan.disconnectsPerSecond = disconnectsPerSecond
        plan.connectsPerSecond = connectsPerSecond
        // Our own descriptors must not be what runs out.
        do {
            _ = try FileDescriptorLimit.ensure(connections: plan.heldConnections + 256)
        } catch {
            say("vtp-abuse: \(error)", error: true)
            throw ExitStatus.usage
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let abuser = Abuser(plan: plan, group: group)
        say("vtp-abuse: against \(target): \(plan.heldConnections) held connections, \(disconnectsPerSecond) disconnects/s, for \(Human.duration(seconds: duration.seconds))")
        abuser.start()
        let interrupted = await Self.wait(seconds: duration.seconds, every: reportInterval.seconds) {
            say("vtp-abuse: " + Self.line(abuser.report))
        }
        if let interrupted { say("vtp-abuse: \(interrupted), stopping") }
        let report = await abuser.stop()
        try? await group.shutdownGracefully()
        say("vtp-abuse: done: " + Self.line(report))
        if let summaryJSON {
            do {
                try SummaryJSON.write(report, metadata: RunMetadata(), settings: ["target": target], to: summaryJSON)
            } catch {
                say("vtp-abuse: \(error)", error: true)
                throw ExitStatus.runFailed
            }
        }
        if report.opened == 0 && plan.heldConnections + disconnectsPerSecond > 0 {
            say("vtp-abuse: no connection to \(target) succeeded", error: true)
            throw ExitStatus.runFailed
        }
    }

    func checkOutput() throws {
        do {
            try OutputPaths.check([("--summary-json", summaryJSON)])
        } catch {
            say("vtp-abuse: \(error)", error: true)
            throw ExitStatus.usage
        }
    }

    static func line(_ r: AbuseReport) -> String {
        "opened \(Human.grouped(Int64(r.opened))), failed \(Human.grouped(Int64(r.failed))), "
            + "closed by the target \(Human.grouped(Int64(r.closedByTarget))), disconnects \(Human.grouped(Int64(r.disconnects))), "
            + "sent \(Human.grouped(Int64(r.bytesSent))) bytes"
    }

    static func hostPort(_ text: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port)
        else { throw ValidationError("--target must be HOST:PORT (got \(text))") }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ValidationError("--target must be HOST:PORT (got \(text))") }
        return (host, port)
    }

    /// Sleeps `seconds`, calling `tick` every `every` seconds; returns the signal's name if one came first.
    static func wait(seconds: Double, every: Double, tick: @escaping @Sendable () -> Void) async -> String? {
        let received = Mutex<String?>(nil)
        let task = Task {
            let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
            while ContinuousClock.now < deadline && !Task.isCancelled {
                try? await Task.sleep(until: min(deadline, ContinuousClock.now + .milliseconds(Int64(every * 1000))))
                if !Task.isCancelled { tick() }
            }
        }
        let signals = TerminationSignals { name in
            received.withLock { $0 = name }
            task.cancel()
        }
        defer { signals.cancel() }
        await task.value
        return received.withLock { $0 }
    }
}

/// stdout may be a pipe: each line written through at once.
func say(_ line: String, error: Bool = false) {
    if error { StandardStreams.err(line) } else { StandardStreams.out(line) }
}

