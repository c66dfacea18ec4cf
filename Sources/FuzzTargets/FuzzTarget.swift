import Foundation
import NIOCore
import NIOEmbedded
import ProxyCore

/// One libFuzzer target: a name for `scripts/fuzz`, what it covers, and the function that runs
/// one input. Targets never throw and never print: an input a parser refuses is the normal case.
/// A crash (a trap, an ASan report, or a broken invariant via `FuzzCheck`) is a finding.
public struct FuzzTarget: Sendable {
    public let name: String
    public let summary: String
    public let run: @Sendable (UnsafeRawBufferPointer) -> Void

    public init(name: String, summary: String, run: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) {
        self.name = name
        self.summary = summary
        self.run = run
    }

    /// Every target, in the order `scripts/fuzz --list` prints them.
    public static let all: [FuzzTarget] = [
        FuzzTarget(
            name: "vtp-receiver",
            summary: "VTP frames split at random points, XML parsing, the receiver's statistics, CSV rows and replies; vtp-proxy's VTP log",
            run: ReceiverTarget.run),
        FuzzTarget(
            name: "vtp-sender-ack",
            summary: "the sender's reading of replies: frames, Transport parsing, ack/nak/iamalive, clock samples; vtp-proxy's VTP log",
            run: SenderAckTarget.run),
        FuzzTarget(
            name: "pgwire-frontend",
            summary: "PostgreSQL client->server decoder, whole vs split at random points, re-encoding; vtp-proxy's query log",
            run: PGWireTargets.frontend),
        FuzzTarget(
            name: "pgwire-backend",
            summary: "PostgreSQL server->client decoder, whole vs split at random points, re-encoding; vtp-proxy's error log",
            run: PGWireTargets.backend),
        FuzzTarget(
            name: "pcap",
            summary: "pcap file reader, link layers, TCP reassembly, vtp-capture analyze and pgprobe sniff on one file",
            run: PcapTarget.run),
        FuzzTarget(
            name: "config",
            summary: "config.json loader (BenchConfiguration) and vtp-proxy's --config file",
            run: ConfigTarget.run),
        FuzzTarget(
            name: "proxy-control",
            summary: "vtp-proxy control endpoint: HTTP request parsing, token check, routing and JSON bodies",
            run: ControlTarget.run),
    ]

    public static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }
}

/// Invariants the targets check beyond "does not crash". A failure stops the fuzzer like a
/// crash does, with the message in its report: it is a finding, never expected.
enum FuzzCheck {
    static func expect(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
        if !condition() { fatalError("fuzz invariant broken: \(message())") }
    }
}

extension FuzzCheck {
    /// Runs a vtp-proxy inspector over the reads; every log line it makes must be a JSON object
    /// (the log is JSON lines whatever the traffic holds).
    static func inspect(_ inspector: inout some StreamInspector, _ input: SplitInput) {
        for read in input.reads {
            let inspection = inspector.inspect(ByteBuffer(bytes: read), connection: 7)
            for record in inspection.records {
                let object = try? JSONSerialization.jsonObject(with: Data(record.line.utf8)) as? [String: Any]
                expect(object != nil, "a proxy log line is not a JSON object: \(record.line)")
            }
            if inspection.failure != nil { return }  // the proxy closes the connection
        }
    }
}

/// An input cut into reads at the points `SplitPoints` chooses; `splits` goes on to make the
/// input's other choices.
struct SplitInput {
    let bytes: UnsafeRawBufferPointer
    var splits: SplitPoints
    let sizes: [Int]

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        splits = SplitPoints(bytes)
        sizes = splits.chunks(covering: bytes.count)
    }

    /// The reads, in order.
    var reads: [UnsafeRawBufferPointer] {
        var offset = 0
        return sizes.map { size in
            defer { offset += size }
            return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + size)])
        }
    }
}

extension EmbeddedChannel {
    /// One read arriving from the network.
    func writeInbound(read: UnsafeRawBufferPointer) throws {
        var buffer = allocator.buffer(capacity: read.count)
        buffer.writeBytes(read)
        try writeInbound(buffer)
    }
}

/// Where an input is cut into reads. Derived from the input's own bytes, so every run of an
/// input (the fuzzer's, a replay, a regression test) splits it the same way.
struct SplitPoints {
    private var state: UInt64

    init(_ bytes: UnsafeRawBufferPointer) {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        state = hash
    }

    /// SplitMix64.
    mutating func next() -> UInt64 {
        state = state &+ 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Consecutive chunk sizes covering `count` bytes: mostly small (1–16 bytes, where split
    /// headers hide), sometimes large.
    mutating func chunks(covering count: Int) -> [Int] {
        var sizes: [Int] = []
        var left = count
        while left > 0 {
            let roll = next()
            let size = roll & 3 == 0 ? Int((roll >> 8) % UInt64(max(1, left))) + 1 : Int((roll >> 8) % 16) + 1
            let taken = min(size, left)
            sizes.append(taken)
            left -= taken
        }
        return sizes
    }
}
