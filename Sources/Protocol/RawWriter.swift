#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

import NIOCore

/// Appends a whole VTP frame to a ByteBuffer with one buffer access: the event and ack
/// templates write a dozen parts each, and every `ByteBuffer.write…` call costs an exclusivity
/// check and a uniqueness check (~150 instructions) of its own.
struct RawWriter {
    private let base: UnsafeMutableRawPointer
    private(set) var count = 0

    /// Up to 20 digits and a sign.
    static let decimalBound = 20

    /// Writes a frame of at most `bound` payload bytes: `body` writes the payload, the length
    /// prefix is filled in after.
    static func writeFrame(into buffer: inout ByteBuffer, bound: Int, _ body: (inout RawWriter) -> Void) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: bound + VTPFraming.headerSize) { raw in
            var writer = RawWriter(base: raw.baseAddress! + VTPFraming.headerSize)
            body(&writer)
            assert(writer.count <= bound, "frame bound too small")
            raw.storeBytes(of: UInt32(truncatingIfNeeded: writer.count).bigEndian, as: UInt32.self)
            return writer.count + VTPFraming.headerSize
        }
    }

    private init(base: UnsafeMutableRawPointer) { self.base = base }

    mutating func bytes(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { source in
            guard let start = source.baseAddress else { return }
            (base + count).copyMemory(from: start, byteCount: source.count)
        }
        count += bytes.count
    }

    mutating func string(_ text: String) {
        var text = text
        text.withUTF8 { bytes($0) }
    }

    private mutating func bytes(_ source: UnsafeBufferPointer<UInt8>) {
        guard let start = source.baseAddress else { return }
        (base + count).copyMemory(from: start, byteCount: source.count)
        count += source.count
    }

    mutating func repeating(_ byte: UInt8, count repeats: Int) {
        guard repeats > 0 else { return }
        memset(base + count, Int32(byte), repeats)
        count += repeats
    }

    /// As `String(value)` writes it.
    mutating func decimal(_ value: Int64) {
        if value < 0 {
            (base + count).storeBytes(of: UInt8(ascii: "-"), as: UInt8.self)
            count += 1
        }
        decimal(value.magnitude)
    }

    mutating func decimal(_ value: UInt64) {
        var digits = 1
        var rest = value / 10
        while rest > 0 { rest /= 10; digits += 1 }
        var v = value
        for index in stride(from: count + digits - 1, through: count, by: -1) {
            (base + index).storeBytes(of: UInt8(48 + v % 10), as: UInt8.self)
            v /= 10
        }
        count += digits
    }

    mutating func timestamp(nanos: Int64, microseconds: Bool) {
        count += ISO8601Time.write(nanos: nanos, microseconds: microseconds, into: (base + count).assumingMemoryBound(to: UInt8.self))
    }
}
