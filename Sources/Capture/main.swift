import ArgumentParser
import CommandLineKit
import Foundation
import PacketCapture
import Synchronization
import VTPWire

struct CaptureCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vtp-capture",
        abstract: "Cross-check VTP event timing from packet captures.",
        discussion: """
            Exit status: 0 done, 2 the capture could not be carried out (no permission, no such \
            interface, I/O error), 64 bad arguments or an unreadable capture file.
            """,
        version: VTPBenchVersion.string,
        subcommands: [Analyze.self, Record.self])
}

struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reassemble the VTP streams of a pcap file and report per-event wire timing.",
        discussion: """
            Reads a classic pcap file (tcpdump -w; microsecond or nanosecond timestamps; Ethernet, \
            Linux cooked SLL/SLL2, raw IP or loopback link types). Wire latency = capture time of \
            the segment carrying an event's last byte - the send time embedded in the event, so \
            the capturing host's clock must be synchronised with the sender's. The ack round trip \
            and handshake times need no synchronisation (one clock).
            """)

    @Argument(help: "pcap file to read.") var file: String
    @Option(
        parsing: .unconditional,
        help: "Only TCP traffic to or from this port (the receiver's); also decides which side is the server when a capture misses the SYN.")
    var port: Int?
    @Flag(help: "Print machine-readable JSON instead of text.") var json = false
    @Option(name: .customLong("events-csv"), help: "Write one row per event: seq, ivorn, client, sent_ns, wire_ns, wire_latency_s, ack_rtt_s.")
    var eventsCSV: String?

    func validate() throws {
        if let port, !(1...65535).contains(port) { throw ValidationError("--port must be 1-65535 (got \(port))") }
    }

    func run() throws {
        try checkOutputs([("--events-csv", eventsCSV)])
        let analysis: WireFileAnalysis
        do {
            analysis = try WireFileAnalysis.run(path: file, port: port.flatMap { UInt16(exactly: $0) })
        } catch {
            throw fail(error, status: ExitStatus.usage)
        }
        if json {
            print(String(decoding: try analysis.json(port: port.flatMap { UInt16(exactly: $0) }), as: UTF8.self))
        } else {
            analysis.lines.forEach { print($0) }
        }
        var status = ExitStatus.success
        if let eventsCSV {
            do { try WireEventsCSV.write(analysis.events, to: eventsCSV) } catch { status = fail(error, status: ExitStatus.runFailed) }
        }
        if let readError = analysis.readError {
            status = fail("\(readError) (statistics above cover the records before it)", status: ExitStatus.usage)
        }
        if status != ExitStatus.success { throw status }
    }
}

struct Record: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Capture a port's TCP traffic to a pcap file (nanosecond timestamps when available).",
        discussion: "Needs root or CAP_NET_RAW. Stops after --seconds or --packets, or on SIGINT/SIGTERM.")

    @Option(help: "Interface to capture on (lo for loopback).") var interface: String = "lo"
    @Option(parsing: .unconditional, help: "TCP port to capture (both directions).") var port: Int
    @Option(help: "Output pcap file.") var output: String
    @Option(parsing: .unconditional, help: "Stop after this long: 10 = 10 s, or with a unit (500ms, 2m).")
    var seconds = SecondsArgument(seconds: 10)
    @Option(parsing: .unconditional, help: "Stop after this many packets.") var packets: Int?

    func validate() throws {
        if !(1...65535).contains(port) { throw ValidationError("--port must be 1-65535 (got \(port))") }
        if !(seconds.seconds > 0) { throw ValidationError("--seconds must be more than 0") }
        if let packets, packets < 1 { throw ValidationError("--packets must be at least 1 (got \(packets))") }
    }

    func run() throws {
        try checkOutputs([("--output", output)])
        let capture: LiveCapture
        do {
            capture = try LiveCapture(interface: interface, filter: "tcp port \(port)")
        } catch {
            throw fail(error, status: ExitStatus.runFailed)
        }
        let note = capture.precisionNote.map { " (\($0))" } ?? ""
        inform(
            "capturing tcp port \(port) on \(interface), \(LiveCapture.linkTypeName(capture.linkType)), "
                + "\(capture.precision) timestamps\(note)")
        // The first SIGINT/SIGTERM ends the recording; the file is still written.
        let stop = Atomic(false)
        let signals = TerminationSignals { _ in stop.store(true, ordering: .relaxed) }
        defer { signals.cancel() }
        let recording: PcapRecording
        do {
            recording = try PcapRecording.record(from: capture, seconds: seconds.seconds, packetLimit: packets) {
                stop.load(ordering: .relaxed)
            }
        } catch {
            throw fail(error, status: ExitStatus.runFailed)
        }
        do { try recording.writer.write(to: output) } catch { throw fail(error, status: ExitStatus.runFailed) }
        let dropped = recording.statistics.map { String($0.dropped + $0.interfaceDropped) } ?? Human.notAvailable
        inform("wrote \(recording.packets) packets to \(output); kernel dropped \(dropped)")
    }
}

/// Output paths are checked before anything is read or captured.
func checkOutputs(_ outputs: [(flag: String, path: String?)]) throws {
    do { try OutputPaths.check(outputs) } catch { throw fail(error, status: ExitStatus.usage) }
}

func inform(_ line: String) {
    StandardStreams.err("vtp-capture: \(line)")
}

/// Prints one error line and returns the exit status to throw.
func fail(_ error: Any, status: ExitCode) -> ExitCode {
    let text = (error as? any Error).map(UserMessage.describe) ?? "\(error)"
    inform(text)
    return status
}

if let message = CaptureCommand.unknownSubcommandMessage(Array(CommandLine.arguments.dropFirst())) {
    inform(message)
    exit(ExitStatus.usage.rawValue)
}
CaptureCommand.main()
