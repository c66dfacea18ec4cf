import ArgumentParser
import Foundation
import LatencyStats
import PGProbeCore
import PGSniff
import PacketCapture
import Synchronization

/// `pgprobe sniff --summary-json`: the figures and the counters behind them.
struct SniffSummary: Codable {
    var requests: Int
    var response_s: LatencySummary
    var complete_s: LatencySummary
    var ack_s: LatencySummary
    var counters: PGSniffCounters
    var decode: DecodeCounters
    var capture_dropped: UInt64?
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

    @Option(name: .customLong("stop-after-seconds"), help: "Stop a live capture after this many seconds.")
    var stopAfterSeconds: Double?

    @Option(name: .customLong("stop-after-queries"), help: "Stop a live capture after this many requests.")
    var stopAfterQueries: Int?

    @Flag(name: .customLong("include-startup"), help: "Count connection set-up (startup → first ReadyForQuery) in the statistics.")
    var includeStartup = false

    @Option(name: .customLong("buffer-mb"), help: "Kernel capture buffer in MiB (raise it if 'capture drops' is not 0).")
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
        if let stopAfterSeconds, !(stopAfterSeconds > 0) { throw ValidationError("--stop-after-seconds must be > 0") }
        if let stopAfterQueries, stopAfterQueries < 1 { throw ValidationError("--stop-after-queries must be ≥ 1") }
        guard (1...2047).contains(bufferMB) else { throw ValidationError("--buffer-mb must be between 1 and 2047") }
    }

    func run() async throws {
        let ports = Set(port.map { UInt16($0) })
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
        if let file {
            do {
                (counters, decode) = try sniffFile(path: file, serverPorts: ports) { _ = record($0) }
            } catch {
                emitError("pgprobe sniff: \(error)")
                throw ExitCode(2)
            }
        } else {
            let sniffer: LiveSniffer
            do {
                sniffer = try LiveSniffer(interface: interface!, serverPorts: ports, bufferBytes: Int32(bufferMB) << 20)
            } catch {
                emitError("pgprobe sniff: \(error)")
                throw ExitCode(2)
            }
            emit(
                "pgprobe sniff: capturing on \(sniffer.interface) (\(LinkType.name(sniffer.linkType)), "
                    + "\(sniffer.precision.rawValue) timestamps), filter \"\(sniffFilter(ports: ports))\"; Ctrl-C to stop")
            let limit = stopAfterQueries
            let done = AsyncStream<Void>.makeStream()
            sniffer.start { timing in
                if record(timing) >= (limit ?? .max) { done.continuation.yield() }
            }
            let seconds = stopAfterSeconds
            _ = await runUntilInterrupted {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { for await _ in done.stream { return } }
                    if let seconds { group.addTask { try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9)) } }
                    group.addTask {
                        // Ctrl-C cancels this task: stop waiting then.
                        while !Task.isCancelled { try? await Task.sleep(nanoseconds: 50_000_000) }
                    }
                    await group.next()
                    group.cancelAll()
                }
            }
            let result = sniffer.stop()
            counters = result.counters
            decode = result.decode
            dropped = result.capture?.dropped
            if let failure = result.failure { emitError("pgprobe sniff: \(failure)") }
        }
        let final = statistics.withLock { $0 }
        emit(
            "pgprobe sniff: \(counters.requests) requests on \(counters.flows) connections; response "
                + final.response.summary.shortLine + "; ack " + final.ackDelay.summary.shortLine)
        emit(Self.countersLine(counters, decode: decode, dropped: dropped))
        if let summaryJSON {
            try writeSummaryJSON(
                SniffSummary(
                    requests: counters.requests, response_s: final.response.summary, complete_s: final.completion.summary,
                    ack_s: final.ackDelay.summary, counters: counters, decode: decode, capture_dropped: dropped),
                to: summaryJSON)
        }
    }

    static func countersLine(_ c: PGSniffCounters, decode: DecodeCounters, dropped: UInt64?) -> String {
        var parts = [
            "segments \(c.segments)", "pure acks \(c.pureAcks)", "piggybacked acks \(c.piggybackedAcks)",
            "unacknowledged \(c.unacknowledged)", "unanswered \(c.unanswered)",
            "retransmitted \(c.retransmittedSegments)", "out-of-order \(c.outOfOrderSegments)",
            "mid-stream connections \(c.midStreamFlows)", "encrypted connections \(c.encryptedFlows)",
            "protocol errors \(c.protocolErrors)", "expired connections \(c.expiredFlows)",
        ]
        if decode.truncated + decode.malformed + decode.fragments > 0 {
            parts.append("undecodable frames \(decode.truncated + decode.malformed + decode.fragments)")
        }
        if let dropped { parts.append("capture drops \(dropped)") }
        return "pgprobe sniff: " + parts.joined(separator: ", ")
    }
}
