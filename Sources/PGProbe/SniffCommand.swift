import ArgumentParser
import CommandLineKit
import Foundation
import LatencyStats
import PGProbeCore
import PGSniff
import PacketCapture
import Synchronization

/// `pgprobe sniff --summary-json`: the figures and the counters behind them (empty figures are null).
struct SniffSummary: Encodable {
    var requests: Int
    var response_s: LatencySummary
    var complete_s: LatencySummary
    var ack_s: LatencySummary
    var counters: PGSniffCounters
    var decode: DecodeCounters
    var capture_dropped: UInt64?
    var requests_per_s: Double?

    enum CodingKeys: String, CodingKey {
        case requests, response_s, complete_s, ack_s, counters, decode, capture_dropped, requests_per_s
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(requests, forKey: .requests)
        try c.encode(response_s, nullIf: response_s.count == 0, forKey: .response_s)
        try c.encode(complete_s, nullIf: complete_s.count == 0, forKey: .complete_s)
        try c.encode(ack_s, nullIf: ack_s.count == 0, forKey: .ack_s)
        try c.encode(counters, forKey: .counters)
        try c.encode(decode, forKey: .decode)
        try c.encode(capture_dropped, forKey: .capture_dropped)
        try c.encode(requests_per_s, forKey: .requests_per_s)
    }
}

struct SniffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sniff",
        abstract: "Infer PostgreSQL latency from packets alone (live or from a pcap file).",
        discussion: """
            For every request (simple Query, or extended Parse/Bind/Execute…Sync) prints:
              response  request packet → the server's first response packet
              complete  request packet → the server's ReadyForQuery packet
              ack       ReadyForQuery → the client's pure TCP ACK covering it
                        ("piggybacked" when the client acked inside its next data segment)
            with running average, sample standard deviation and percentiles. Connections are
            told apart by 5-tuple and followed by TCP sequence/ack numbers, so many clients,
            IPv4/IPv6 and pipelined queries are measured correctly. Captured on the server,
            "response" is the server's processing time and "ack" the network round trip plus
            the client's ACK delay; captured on the client, "response" includes the round trip.
            Live capture needs root or CAP_NET_RAW; SSL must be off (sslmode=disable).
            """)

    @Option(help: "Capture live on this interface (e.g. lo, eth0).")
    var interface: String?

    @Option(help: "Read a pcap file instead (tcpdump -w output).")
    var file: String?

    @Option(help: "The PostgreSQL server's TCP port (repeat for several).")
    var port: [Int] = [5432]

    @Option(
        name: .customLong("stop-after-seconds"), parsing: .unconditional,
        help: "Stop a live capture after this long; a bare number is seconds (30, or 500ms, 2m).")
    var stopAfterSeconds: SecondsArgument?

    @Option(name: .customLong("stop-after-queries"), parsing: .unconditional, help: "Stop a live capture after this many requests.")
    var stopAfterQueries: Int?

    @Flag(name: .customLong("include-startup"), help: "Count connection set-up (startup → first ReadyForQuery) in the statistics.")
    var includeStartup = false

    @Option(name: .customLong("buffer-mb"), parsing: .unconditional, help: "Kernel capture buffer in MiB (raise it if 'capture drops' is not 0).")
    var bufferMB: Int = 64

    @Flag(help: "No line per request: only the final statistics (for heavy traffic).")
    var quiet = false

    @Option(name: .customLong("summary-json"), help: "Write the statistics and counters here at the end.")
    var summaryJSON: String?

    func validate() throws {
        guard (interface == nil) != (file == nil) else {
            throw ValidationError("give exactly one of --interface IFACE (live) or --file F.pcap")
        }
        for value in port where !(1...65535).contains(value) {
            throw ValidationError("--port \(value) is not between 1 and 65535")
        }
        if let stopAfterSeconds, !(stopAfterSeconds.seconds > 0) {
            throw ValidationError("--stop-after-seconds must be more than 0")
        }
        if let stopAfterQueries, stopAfterQueries < 1 {
            throw ValidationError("--stop-after-queries must be at least 1 (got \(stopAfterQueries))")
        }
        guard (1...2047).contains(bufferMB) else {
            throw ValidationError("--buffer-mb must be between 1 and 2047 (got \(bufferMB))")
        }
    }

    func run() async throws {
        try checkOutputs("sniff", [("--summary-json", summaryJSON)])
        let metadata = RunMetadata()
        let ports = Set(port.compactMap { UInt16(exactly: $0) })
        // Updated on the capture thread (or this one for a file); read here at the end.
        let statistics = Mutex(SniffStatistics(includeStartup: includeStartup))
        let quiet = self.quiet
        let record: @Sendable (PGQueryTiming) -> Int = { timing in
            let (line, count) = statistics.withLock { ($0.add(timing), $0.response.count) }
            if !quiet { emit(line) }
            return count
        }
        var counters: PGSniffCounters
        var decode: DecodeCounters
        var dropped: UInt64?
        var captureFailed = false
        var fileError: PcapFileError?
        if let file {
            do {
                (counters, decode, fileError) = try sniffFile(path: file, serverPorts: ports) { _ = record($0) }
            } catch {
                emitError("pgprobe sniff: \(UserMessage.describe(error))")
                // A file that cannot be read is bad input; a failing disk is a failed run.
                if case .readFailed = error as? PcapFileError { throw ExitStatus.runFailed }
                throw ExitStatus.usage
            }
        } else {
            let sniffer: LiveSniffer
            do {
                sniffer = try LiveSniffer(interface: interface ?? "lo", serverPorts: ports, bufferBytes: Int32(bufferMB) << 20)
            } catch {
                emitError("pgprobe sniff: \(UserMessage.describe(error))")
                throw ExitStatus.runFailed
            }
            emit(
                "pgprobe sniff: capturing on \(sniffer.interface) (\(LinkType.name(sniffer.linkType)), "
                    + "\(sniffer.precision.rawValue) timestamps), filter \"\(sniffFilter(ports: ports))\"; Ctrl-C to stop")
            let limit = stopAfterQueries
            let done = AsyncStream<Void>.makeStream()
            sniffer.start { timing in
                if record(timing) >= (limit ?? .max) { done.continuation.yield() }
            }
            let seconds = stopAfterSeconds?.seconds
            await runUntilInterrupted {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { for await _ in done.stream { return } }
                    if let seconds { group.addTask { try? await Task.sleep(for: .milliseconds(Int64(seconds * 1000))) } }
                    group.addTask {
                        // Ctrl-C cancels this task: stop waiting then.
                        while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(50)) }
                    }
                    await group.next()
                    group.cancelAll()
                }
            }
            let result = sniffer.stop()
            counters = result.counters
            decode = result.decode
            dropped = result.capture.map { _ in result.decode.captureDropped }
            if let failure = result.failure {
                emitError("pgprobe sniff: \(failure)")
                captureFailed = true
            }
        }
        let final = statistics.withLock { $0 }
        let rate = final.requestsPerSecond
        emit(
            "pgprobe sniff: \(counters.requests) requests on \(counters.flows) connections (\(Human.rate(rate, unit: "requests")));"
                + " response " + final.response.summary.humanLine + "; ack " + final.ackDelay.summary.humanLine)
        emit(Self.countersLine(counters))
        emit("pgprobe sniff: " + decode.line)
        var written = true
        if let summaryJSON {
            var settings: [String: Any] = ["ports": ports.sorted().map(Int.init), "include_startup": includeStartup]
            if let file { settings["file"] = file }
            if let interface {
                settings["interface"] = interface
                settings["buffer_mb"] = bufferMB
            }
            written = writeSummary(
                SniffSummary(
                    requests: counters.requests, response_s: final.response.summary, complete_s: final.completion.summary,
                    ack_s: final.ackDelay.summary, counters: counters, decode: decode, capture_dropped: dropped,
                    requests_per_s: rate),
                command: "sniff", metadata: metadata, settings: settings, to: summaryJSON)
        }
        if let fileError {
            // Everything before the bad record was analysed and reported above.
            emitError("pgprobe sniff: \(fileError) (statistics above cover the records before it)")
            if case .readFailed = fileError { throw ExitStatus.runFailed }
            throw ExitStatus.usage
        }
        if captureFailed || !written { throw ExitStatus.runFailed }
    }

    static func countersLine(_ c: PGSniffCounters) -> String {
        let parts = [
            "segments \(c.segments)", "pure acks \(c.pureAcks)", "piggybacked acks \(c.piggybackedAcks)",
            "unacknowledged \(c.unacknowledged)", "unanswered \(c.unanswered)",
            "retransmitted \(c.retransmittedSegments)", "out-of-order \(c.outOfOrderSegments)",
            "mid-stream connections \(c.midStreamFlows)", "encrypted connections \(c.encryptedFlows)",
            "protocol errors \(c.protocolErrors)", "expired connections \(c.expiredFlows)",
        ]
        return "pgprobe sniff: " + parts.joined(separator: ", ")
    }
}
