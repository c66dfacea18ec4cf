import Glibc

/// Timestamp resolution of a capture (file magic or live device setting).
public enum TimestampPrecision: String, Sendable, Equatable, Codable {
    case microseconds
    case nanoseconds

    var magic: UInt32 { self == .microseconds ? 0xA1B2_C3D4 : 0xA1B2_3C4D }
}

/// One captured frame, as stored in a pcap record.
public struct CapturedPacket: Sendable, Equatable {
    /// Capture time, nanoseconds since the Unix epoch.
    public var timestampNanos: Int64
    /// Length of the frame on the wire (may exceed `data.count` when the snaplen cut it).
    public var originalLength: Int
    /// The captured bytes, starting at the link-layer header.
    public var data: [UInt8]

    public init(timestampNanos: Int64, originalLength: Int? = nil, data: [UInt8]) {
        self.timestampNanos = timestampNanos
        self.originalLength = originalLength ?? data.count
        self.data = data
    }
}

/// A pcap file could not be read or written. Messages name the file and the offset.
public enum PcapFileError: Error, Equatable, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    case readFailed(path: String, reason: String)
    case writeFailed(path: String, reason: String)
    case emptyFile(path: String)
    case truncatedHeader(path: String, bytes: Int)
    case pcapNG(path: String)
    case badMagic(path: String, magic: UInt32)
    case unsupportedVersion(path: String, major: UInt16, minor: UInt16)
    case truncatedRecordHeader(path: String, offset: Int, bytes: Int)
    case truncatedRecord(path: String, offset: Int, expected: Int, got: Int)
    case corruptRecord(path: String, offset: Int, reason: String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason): return "\(path): cannot open: \(reason)"
        case .readFailed(let path, let reason): return "\(path): read failed: \(reason)"
        case .writeFailed(let path, let reason): return "\(path): write failed: \(reason)"
        case .emptyFile(let path): return "\(path): empty file, not a pcap capture"
        case .truncatedHeader(let path, let bytes):
            return "\(path): truncated pcap file: only \(bytes) of the 24-byte file header"
        case .pcapNG(let path):
            return "\(path): this is a pcapng file; write pcap instead (tcpdump -w writes pcap by default)"
                + " or convert it: tcpdump -r IN.pcapng -w OUT.pcap"
        case .badMagic(let path, let magic):
            return "\(path): not a pcap file (magic 0x\(String(magic, radix: 16)))"
        case .unsupportedVersion(let path, let major, let minor):
            return "\(path): unsupported pcap version \(major).\(minor) (expected 2.4)"
        case .truncatedRecordHeader(let path, let offset, let bytes):
            return "\(path): truncated at offset \(offset): record header has \(bytes) of 16 bytes"
                + " (was the capture still being written?)"
        case .truncatedRecord(let path, let offset, let expected, let got):
            return "\(path): truncated at offset \(offset): record needs \(expected) bytes, file has \(got)"
        case .corruptRecord(let path, let offset, let reason):
            return "\(path): corrupt record at offset \(offset): \(reason)"
        }
    }
}

/// Where a reader gets its bytes: a file (read in chunks) or memory.
enum ByteSource {
    case memory([UInt8])
    case file(Int32)
}

/// Reads classic pcap files (tcpdump -w): microsecond and nanosecond magic, either byte order.
/// Never traps on bad input: every inconsistency is a `PcapFileError`.
public final class PcapFileReader {
    public let path: String
    public private(set) var linkType: UInt32
    public private(set) var precision: TimestampPrecision
    public private(set) var snapshotLength: UInt32
    public private(set) var bigEndian: Bool
    /// Records larger than this are corrupt (libpcap's own cap for the largest snaplen).
    public static let maximumRecordLength = 0x0400_0000

    private var source: ByteSource
    private var buffer: [UInt8] = []
    private var bufferPosition = 0
    private var fileOffset = 0
    private var atEOF = false

    public convenience init(path: String) throws(PcapFileError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        try self.init(source: .file(fd), path: path)
    }

    /// Reads a capture held in memory; `name` appears in error messages.
    public convenience init(bytes: [UInt8], name: String = "<memory>") throws(PcapFileError) {
        try self.init(source: .memory(bytes), path: name)
    }

    private init(source: ByteSource, path: String) throws(PcapFileError) {
        self.source = source
        self.path = path
        if case .memory(let bytes) = source {
            buffer = bytes
            atEOF = true
        }
        // Temporary values so `read` can run before all properties are set.
        linkType = 0
        precision = .microseconds
        snapshotLength = 0
        bigEndian = false
        let header: [UInt8]
        do {
            header = try read(24)
        } catch {
            closeFile()
            throw error
        }
        if header.isEmpty { closeFile(); throw .emptyFile(path: path) }
        if header.count < 24 {
            closeFile()
            if header.count >= 4, Self.u32(header, 0, bigEndian: false) == 0x0A0D_0D0A { throw .pcapNG(path: path) }
            throw .truncatedHeader(path: path, bytes: header.count)
        }
        let little = Self.u32(header, 0, bigEndian: false)
        let big = Self.u32(header, 0, bigEndian: true)
        switch (little, big) {
        case (0xA1B2_C3D4, _): (precision, bigEndian) = (.microseconds, false)
        case (0xA1B2_3C4D, _): (precision, bigEndian) = (.nanoseconds, false)
        case (_, 0xA1B2_C3D4): (precision, bigEndian) = (.microseconds, true)
        case (_, 0xA1B2_3C4D): (precision, bigEndian) = (.nanoseconds, true)
        case (0x0A0D_0D0A, _): closeFile(); throw .pcapNG(path: path)
        default: closeFile(); throw .badMagic(path: path, magic: big)
        }
        let major = Self.u16(header, 4, bigEndian: bigEndian)
        let minor = Self.u16(header, 6, bigEndian: bigEndian)
        guard major == 2 else { closeFile(); throw .unsupportedVersion(path: path, major: major, minor: minor) }
        snapshotLength = Self.u32(header, 16, bigEndian: bigEndian)
        // The upper bits of the link-type field carry FCS information, not the type.
        linkType = Self.u32(header, 20, bigEndian: bigEndian) & 0x03FF_FFFF
    }

    deinit { closeFile() }

    /// The next record, nil at the clean end of the file.
    public func next() throws(PcapFileError) -> CapturedPacket? {
        let recordOffset = fileOffset
        let header = try read(16)
        if header.isEmpty { return nil }
        guard header.count == 16 else {
            throw .truncatedRecordHeader(path: path, offset: recordOffset, bytes: header.count)
        }
        let seconds = Int64(Self.u32(header, 0, bigEndian: bigEndian))
        let fraction = Int64(Self.u32(header, 4, bigEndian: bigEndian))
        let capturedLength = Int(Self.u32(header, 8, bigEndian: bigEndian))
        let originalLength = Int(Self.u32(header, 12, bigEndian: bigEndian))
        let fractionLimit: Int64 = precision == .microseconds ? 1_000_000 : 1_000_000_000
        guard fraction < fractionLimit else {
            throw .corruptRecord(
                path: path, offset: recordOffset,
                reason: "sub-second field \(fraction) is not below \(fractionLimit)")
        }
        guard capturedLength <= Self.maximumRecordLength else {
            throw .corruptRecord(
                path: path, offset: recordOffset, reason: "record length \(capturedLength) is implausible")
        }
        guard originalLength >= capturedLength || originalLength == 0 else {
            throw .corruptRecord(
                path: path, offset: recordOffset,
                reason: "captured length \(capturedLength) exceeds original length \(originalLength)")
        }
        let data = try read(capturedLength)
        guard data.count == capturedLength else {
            throw .truncatedRecord(path: path, offset: recordOffset, expected: capturedLength, got: data.count)
        }
        let nanos = seconds * 1_000_000_000 + (precision == .microseconds ? fraction * 1000 : fraction)
        return CapturedPacket(timestampNanos: nanos, originalLength: max(originalLength, capturedLength), data: data)
    }

    /// Every remaining record.
    public func readAll() throws(PcapFileError) -> [CapturedPacket] {
        var packets: [CapturedPacket] = []
        while let packet = try next() { packets.append(packet) }
        return packets
    }

    // MARK: - Bytes

    /// Up to `count` bytes; fewer only at the end of the file.
    private func read(_ count: Int) throws(PcapFileError) -> [UInt8] {
        while buffer.count - bufferPosition < count && !atEOF { try refill() }
        let available = min(count, buffer.count - bufferPosition)
        let bytes = Array(buffer[bufferPosition..<(bufferPosition + available)])
        bufferPosition += available
        fileOffset += available
        return bytes
    }

    private func refill() throws(PcapFileError) {
        guard case .file(let fd) = source else {
            atEOF = true
            return
        }
        if bufferPosition > 0 {
            buffer.removeFirst(bufferPosition)
            bufferPosition = 0
        }
        let chunk = 1 << 20
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: chunk))
        let got = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + start, chunk) }
        if got < 0 {
            let reason = String(cString: strerror(errno))
            buffer.removeLast(chunk)
            if errno == EINTR { return }
            throw .readFailed(path: path, reason: reason)
        }
        buffer.removeLast(chunk - got)
        if got == 0 { atEOF = true }
    }

    private func closeFile() {
        if case .file(let fd) = source {
            close(fd)
            source = .memory([])
        }
    }

    static func u32(_ b: [UInt8], _ i: Int, bigEndian: Bool) -> UInt32 {
        let (a, c, d, e) = (UInt32(b[i]), UInt32(b[i + 1]), UInt32(b[i + 2]), UInt32(b[i + 3]))
        return bigEndian ? a << 24 | c << 16 | d << 8 | e : e << 24 | d << 16 | c << 8 | a
    }

    static func u16(_ b: [UInt8], _ i: Int, bigEndian: Bool) -> UInt16 {
        let (a, c) = (UInt16(b[i]), UInt16(b[i + 1]))
        return bigEndian ? a << 8 | c : c << 8 | a
    }
}

/// Writes classic pcap files that tcpdump, Wireshark and `PcapFileReader` read.
public struct PcapFileWriter {
    public let linkType: UInt32
    public let precision: TimestampPrecision
    public let bigEndian: Bool
    public let snapshotLength: UInt32
    /// The file so far (header + records); `write(to:)` saves it.
    public private(set) var bytes: [UInt8] = []

    public init(
        linkType: UInt32, precision: TimestampPrecision = .nanoseconds, bigEndian: Bool = false,
        snapshotLength: UInt32 = 262_144
    ) {
        self.linkType = linkType
        self.precision = precision
        self.bigEndian = bigEndian
        self.snapshotLength = snapshotLength
        append32(precision.magic)
        append16(2)
        append16(4)
        append32(0)  // thiszone
        append32(0)  // sigfigs
        append32(snapshotLength)
        append32(linkType)
    }

    /// Appends one record. The timestamp is truncated to the file's precision.
    public mutating func append(_ packet: CapturedPacket) {
        let seconds = packet.timestampNanos.floorDiv(1_000_000_000)
        let subsecond = packet.timestampNanos - seconds * 1_000_000_000
        let stored = min(packet.data.count, Int(snapshotLength))
        append32(UInt32(truncatingIfNeeded: seconds))
        append32(UInt32(precision == .microseconds ? subsecond / 1000 : subsecond))
        append32(UInt32(stored))
        append32(UInt32(max(packet.originalLength, stored)))
        bytes.append(contentsOf: packet.data[0..<stored])
    }

    public func write(to path: String) throws(PcapFileError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, bytes.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .writeFailed(path: path, reason: String(cString: strerror(errno)))
            }
            written += n
        }
    }

    private mutating func append32(_ v: UInt32) {
        let value = bigEndian ? v.bigEndian : v.littleEndian
        withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
    }

    private mutating func append16(_ v: UInt16) {
        let value = bigEndian ? v.bigEndian : v.littleEndian
        withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
    }
}

extension Int64 {
    func floorDiv(_ d: Int64) -> Int64 {
        let q = self / d
        return (self % d != 0 && (self < 0) != (d < 0)) ? q - 1 : q
    }
}
