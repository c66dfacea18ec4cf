import CLibXML2
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import Protocol

// Per-message CPU cost of the hot paths, in a release build: what bounds events/s.
func measure(_ name: String, iterations: Int = 20_000, _ body: () throws -> Void) rethrows {
    for _ in 0..<1000 { try body() }  // warm-up
    let start = NIODeadline.now()
    for _ in 0..<iterations { try body() }
    let nanos = Double((NIODeadline.now() - start).nanoseconds) / Double(iterations)
    print(name + String(repeating: " ", count: max(1, 44 - name.count)) + Fixed3.format(nanos / 1000) + " us")
}

enum Fixed3 {
    static func format(_ v: Double) -> String {
        let scaled = Int((v * 1000).rounded())
        let frac = String(scaled % 1000)
        return "\(scaled / 1000)." + String(repeating: "0", count: 3 - frac.count) + frac
    }
}

let builder = TestEventBuilder(localIVO: "ivo://vtpbench.test/sender", eventSize: 1024)
let allocator = ByteBufferAllocator()
var sequence: UInt64 = 0
let eventDocument = builder.document(sequence: 1, sentNanos: WallClock.nowNanos())
var eventBuffer = allocator.buffer(capacity: 1100)
eventBuffer.writeString(eventDocument)
let ack = TransportMessage.ack(eventIVORN: builder.ivorn(sequence: 1), localIVO: "ivo://vtpbench.test/receiver")
var ackBuffer = allocator.buffer(capacity: 600)
ackBuffer.writeString(ack.xml)
let ackWriter = AckWriter(localIVO: "ivo://vtpbench.test/receiver")

// `Microbench parse-only N`: just the receiver's parse, for profilers (callgrind).
if CommandLine.arguments.count == 3, CommandLine.arguments[1] == "parse-only", let n = Int(CommandLine.arguments[2]) {
    for _ in 0..<n { _ = try VTPMessage.parse(eventBuffer) }
    exit(0)
}
if CommandLine.arguments.count == 3, CommandLine.arguments[1] == "quick-parse-only", let n = Int(CommandLine.arguments[2]) {
    for _ in 0..<n { _ = try VTPMessage.parsePlainFirst(eventBuffer) }
    exit(0)
}
// `Microbench build-only N`: the sender's event build and the receiver's ack build, for callgrind.
if CommandLine.arguments.count == 3, CommandLine.arguments[1] == "build-only", let n = Int(CommandLine.arguments[2]) {
    for i in 0..<n {
        var b = allocator.buffer(capacity: 1100)
        builder.writeFramedDocument(sequence: UInt64(i), sentNanos: 1_795_490_659_043_282_425, into: &b)
        var a = allocator.buffer(capacity: 640)
        ackWriter.writeFramedAck(
            eventIVORN: "ivo://vtpbench.test/sender#abc-1", receivedNanos: 1_795_490_659_043_282_425,
            repliedNanos: 1_795_490_659_043_282_425, into: &a)
    }
    exit(0)
}
// `Microbench ack-only N`: just the sender's read of an ack (QuickXML), for callgrind.
if CommandLine.arguments.count == 3, CommandLine.arguments[1] == "ack-only", let n = Int(CommandLine.arguments[2]) {
    for _ in 0..<n { _ = try VTPMessage.parsePlainFirst(ackBuffer) }
    exit(0)
}

// `Microbench floor-server` / `Microbench floor-client PORT EVENTS CONCURRENCY`: SwiftNIO's own
// per-event floor (see PerEventFloor).
let arguments = CommandLine.arguments
if arguments.count == 2, arguments[1] == "floor-server" {
    try PerEventFloor.serve(threads: System.coreCount)
}
if arguments.count == 5, arguments[1] == "floor-client", let port = Int(arguments[2]), let events = Int(arguments[3]),
    let concurrency = Int(arguments[4]), events > 0, concurrency > 0
{
    try PerEventFloor.run(port: port, events: events, concurrency: concurrency, threads: System.coreCount)
    exit(0)
}

print("per-message CPU cost (release, one core):")
measure("build 1 KB event document + frame") {
    sequence += 1
    var b = allocator.buffer(capacity: 1100)
    builder.writeFramedDocument(sequence: sequence, sentNanos: 1_795_490_659_043_282_425, into: &b)
}
try measure("parse 1 KB event (VTPMessage.parse)") { _ = try VTPMessage.parse(eventBuffer) }
try measure("parse 1 KB event (QuickXML first, the receiver's path)") { _ = try VTPMessage.parsePlainFirst(eventBuffer) }
measure("build ack + frame (AckWriter, the receiver's path)") {
    var a = allocator.buffer(capacity: 640)
    ackWriter.writeFramedAck(
        eventIVORN: "ivo://vtpbench.test/sender#abc-1", receivedNanos: 1_795_490_659_043_282_425,
        repliedNanos: 1_795_490_659_043_282_425, into: &a)
}
measure("build ack + frame (TransportMessage)") {
    _ = TransportMessage.ack(eventIVORN: "ivo://vtpbench.test/sender#abc-1", localIVO: "ivo://vtpbench.test/receiver")
        .framed(allocator: allocator)
}
try measure("parse ack (VTPMessage.parse)") { _ = try VTPMessage.parse(ackBuffer) }
try measure("parse ack (QuickXML, the sender's path)") {
    _ = try VTPMessage.parsePlainFirst(ackBuffer)
}
let rawEvent = Array(eventDocument.utf8)
for (label, encoding) in [("libxml2 alone: read 1 KB event, UTF-8 forced", "UTF-8"), ("libxml2 alone: read 1 KB event, autodetect", nil)] as [(String, String?)] {
    measure(label) {
        rawEvent.withUnsafeBufferPointer { p in
            p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: p.count) { c in
                let doc = xmlReadMemory(c, Int32(p.count), nil, encoding, Int32(XML_PARSE_NONET.rawValue))
                xmlFreeDoc(doc)
            }
        }
    }
}
try measure("SafeXMLParser.parse 1 KB event (tree)") { _ = try SafeXMLParser.parse(rawEvent) }
measure("wall clock read") { _ = WallClock.nowNanos() }
