import Foundation
import PacketCapture
import XCTest

final class PcapFileTests: XCTestCase {
    let packets = [
        CapturedPacket(timestampNanos: 1_700_000_000_123_456_789, data: [1, 2, 3]),
        CapturedPacket(timestampNanos: 1_700_000_001_000_000_001, originalLength: 100, data: Array(0..<60)),
    ]

    func testRoundTripBothPrecisionsAndByteOrders() throws {
        for precision in [TimestampPrecision.microseconds, .nanoseconds] {
            for bigEndian in [false, true] {
                var writer = PcapFileWriter(linkType: LinkType.ethernet, precision: precision, bigEndian: bigEndian)
                packets.forEach { writer.append($0) }
                let reader = try PcapFileReader(bytes: writer.bytes)
                XCTAssertEqual(reader.precision, precision)
                XCTAssertEqual(reader.bigEndian, bigEndian)
                XCTAssertEqual(reader.linkType, LinkType.ethernet)
                let read = try reader.readAll()
                XCTAssertEqual(read.map(\.data), packets.map(\.data))
                XCTAssertEqual(read.map(\.originalLength), [3, 100])
                let expected: [Int64] =
                    precision == .nanoseconds
                    ? [1_700_000_000_123_456_789, 1_700_000_001_000_000_001]
                    : [1_700_000_000_123_456_000, 1_700_000_001_000_000_000]
                XCTAssertEqual(read.map(\.timestampNanos), expected, "\(precision) bigEndian=\(bigEndian)")
            }
        }
    }

    func testMagicBytesOnDisk() throws {
        let micro = PcapFileWriter(linkType: 1, precision: .microseconds).bytes
        let nanoBig = PcapFileWriter(linkType: 1, precision: .nanoseconds, bigEndian: true).bytes
        XCTAssertEqual(Array(micro[0..<4]), [0xD4, 0xC3, 0xB2, 0xA1])
        XCTAssertEqual(Array(nanoBig[0..<4]), [0xA1, 0xB2, 0x3C, 0x4D])
    }

    func testFileOnDiskIsStreamed() throws {
        var writer = PcapFileWriter(linkType: LinkType.raw, precision: .nanoseconds)
        // More than one 1 MiB read chunk, so records straddle refills.
        for i in 0..<3000 {
            writer.append(CapturedPacket(timestampNanos: Int64(i), data: [UInt8](repeating: UInt8(i & 0xFF), count: 777)))
        }
        let path = NSTemporaryDirectory() + "vtpbench-capture-\(getpid()).pcap"
        defer { unlink(path) }
        try writer.write(to: path)
        let read = try PcapFileReader(path: path).readAll()
        XCTAssertEqual(read.count, 3000)
        XCTAssertEqual(read[2999].timestampNanos, 2999)
        XCTAssertEqual(read[2999].data, [UInt8](repeating: UInt8(2999 & 0xFF), count: 777))
    }

    func testTruncatedAndCorruptFilesGiveClearErrors() throws {
        var writer = PcapFileWriter(linkType: 1, precision: .nanoseconds)
        packets.forEach { writer.append($0) }
        let good = writer.bytes

        XCTAssertThrowsError(try PcapFileReader(bytes: [])) { XCTAssertEqual($0 as? PcapFileError, .emptyFile(path: "<memory>")) }
        XCTAssertThrowsError(try PcapFileReader(bytes: Array(good[0..<10]))) {
            XCTAssertEqual($0 as? PcapFileError, .truncatedHeader(path: "<memory>", bytes: 10))
        }
        XCTAssertThrowsError(try PcapFileReader(bytes: Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))) {
            guard case .badMagic = $0 as? PcapFileError else { return XCTFail("\($0)") }
            XCTAssertTrue("\($0)".contains("not a pcap file"))
        }
        XCTAssertThrowsError(try PcapFileReader(bytes: [0x0A, 0x0D, 0x0D, 0x0A] + [UInt8](repeating: 0, count: 24))) {
            XCTAssertEqual($0 as? PcapFileError, .pcapNG(path: "<memory>"))
        }
        // Cut inside the second record's header, then inside its data.
        let firstRecordEnd = 24 + 16 + 3
        let cutHeader = try PcapFileReader(bytes: Array(good[0..<(firstRecordEnd + 7)]))
        XCTAssertNotNil(try cutHeader.next())
        XCTAssertThrowsError(try cutHeader.next()) {
            XCTAssertEqual($0 as? PcapFileError, .truncatedRecordHeader(path: "<memory>", offset: firstRecordEnd, bytes: 7))
        }
        let cutData = try PcapFileReader(bytes: Array(good[0..<(good.count - 5)]))
        XCTAssertNotNil(try cutData.next())
        XCTAssertThrowsError(try cutData.next()) {
            XCTAssertEqual($0 as? PcapFileError, .truncatedRecord(path: "<memory>", offset: firstRecordEnd, expected: 60, got: 55))
            XCTAssertTrue("\($0)".contains("truncated"))
        }
        // Corrupt: nanosecond field ≥ 1e9; absurd record length.
        var badFraction = good
        badFraction.replaceSubrange(28..<32, with: [0xFF, 0xFF, 0xFF, 0xFF])
        XCTAssertThrowsError(try PcapFileReader(bytes: badFraction).next()) {
            guard case .corruptRecord(_, 24, _) = $0 as? PcapFileError else { return XCTFail("\($0)") }
        }
        var badLength = good
        badLength.replaceSubrange(32..<36, with: [0xFF, 0xFF, 0xFF, 0x7F])
        XCTAssertThrowsError(try PcapFileReader(bytes: badLength).next()) {
            guard case .corruptRecord(_, 24, _) = $0 as? PcapFileError else { return XCTFail("\($0)") }
        }
        // Random garbage after a valid header never traps.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let garbage = (0..<Int.random(in: 0..<200, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let reader = try PcapFileReader(bytes: Array(good[0..<24]) + garbage)
            do { while try reader.next() != nil {} } catch {}
        }
    }

    func testMissingFile() {
        XCTAssertThrowsError(try PcapFileReader(path: "/nonexistent/x.pcap")) {
            guard case .cannotOpen(let path, _) = $0 as? PcapFileError else { return XCTFail("\($0)") }
            XCTAssertEqual(path, "/nonexistent/x.pcap")
        }
    }
}
