import CPcap
import Glibc

/// Live capture could not start or failed. Messages say what to do.
public enum LiveCaptureError: Error, Equatable, CustomStringConvertible {
    case permissionDenied(interface: String, detail: String)
    case noSuchInterface(interface: String, detail: String)
    case badFilter(filter: String, detail: String)
    case activationFailed(interface: String, code: Int32, detail: String)
    case captureFailed(detail: String)

    public var description: String {
        switch self {
        case .permissionDenied(let interface, let detail):
            return "no permission to capture on \(interface) (\(detail)): run as root, or grant the binary the"
                + " capability once: sudo setcap cap_net_raw=eip \(Self.executablePath)"
        case .noSuchInterface(let interface, let detail):
            return "no capture interface \"\(interface)\" (\(detail)); list them with: ip -brief link"
                + " (loopback is \"lo\")"
        case .badFilter(let filter, let detail):
            return "invalid BPF filter \"\(filter)\": \(detail)"
        case .activationFailed(let interface, let code, let detail):
            return "cannot start capture on \(interface): \(detail) (pcap error \(code))"
        case .captureFailed(let detail):
            return "capture failed: \(detail)"
        }
    }

    /// The running binary, resolved by the kernel (a library does not read `CommandLine`).
    static var executablePath: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, Int(PATH_MAX))
        guard length > 0 else { return "BINARY" }
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Counters from pcap_stats.
public struct CaptureStatistics: Sendable, Equatable, Codable {
    /// Packets the kernel passed to the capture.
    public var received: UInt64
    /// Packets dropped because the capture buffer was full (the reader was too slow).
    public var dropped: UInt64
    /// Packets dropped by the interface or driver.
    public var interfaceDropped: UInt64

    public init(received: UInt64 = 0, dropped: UInt64 = 0, interfaceDropped: UInt64 = 0) {
        self.received = received
        self.dropped = dropped
        self.interfaceDropped = interfaceDropped
    }
}

/// Owns a `pcap_t` (an OpaquePointer, not Sendable): all use goes through this class.
final class PcapHandle {
    let raw: OpaquePointer
    private var closed = false

    init(_ raw: OpaquePointer) { self.raw = raw }

    func close() {
        if !closed {
            closed = true
            pcap_close(raw)
        }
    }

    var lastError: String { String(cString: pcap_geterr(raw)) }

    deinit { close() }
}

/// A live capture on one interface: immediate mode, nanosecond timestamps when the device
/// offers them, a BPF filter, non-blocking reads driven by poll(2) so a stop request or a
/// timeout is honoured promptly (a blocking pcap_next_ex may never return on Linux).
///
/// Not thread-safe: use one instance from one thread (a dedicated capture thread).
public final class LiveCapture {
    public let interface: String
    public private(set) var filter: String
    /// Precision actually obtained: microseconds when the device refused nanoseconds.
    public let precision: TimestampPrecision
    /// DLT of the interface (Ethernet on Linux `lo`).
    public let linkType: UInt32
    /// nil in immediate mode; else the longest the kernel holds a block before handing it over.
    public let blockTimeoutMillis: Int32?
    private let handle: PcapHandle
    private let selectableFD: Int32

    /// Opens and activates a capture. `bufferBytes` is the kernel ring size: larger absorbs bursts.
    /// `blockTimeoutMillis`: nil (default) is immediate mode, one ring slot per packet sized for
    /// the MTU (64 KiB on `lo`: few slots); a value turns immediate mode off so the kernel packs
    /// packets into blocks (TPACKET_V3, far more packets per buffer), delivered at the latest
    /// after that many ms. Timestamps are the kernel's either way.
    public init(
        interface: String, filter: String = "", snapshotLength: Int32 = 262_144, bufferBytes: Int32 = 32 << 20,
        promiscuous: Bool = false, blockTimeoutMillis: Int32? = nil
    ) throws(LiveCaptureError) {
        self.interface = interface
        self.filter = filter
        self.blockTimeoutMillis = blockTimeoutMillis
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        guard let raw = pcap_create(interface, &errbuf) else {
            throw .activationFailed(interface: interface, code: -1, detail: Self.text(errbuf))
        }
        let handle = PcapHandle(raw)
        pcap_set_snaplen(raw, snapshotLength)
        pcap_set_promisc(raw, promiscuous ? 1 : 0)
        if let blockTimeoutMillis {
            pcap_set_timeout(raw, blockTimeoutMillis)
        } else {
            pcap_set_immediate_mode(raw, 1)  // deliver each packet now, not when a buffer block fills
        }
        pcap_set_buffer_size(raw, bufferBytes)
        let wantNano = pcap_set_tstamp_precision(raw, Int32(PCAP_TSTAMP_PRECISION_NANO)) == 0
        let status = pcap_activate(raw)
        if status < 0 {
            let detail = handle.lastError
            switch status {
            case PCAP_ERROR_PERM_DENIED:
                throw .permissionDenied(interface: interface, detail: detail)
            case PCAP_ERROR_NO_SUCH_DEVICE:
                throw .noSuchInterface(interface: interface, detail: detail)
            default:
                throw .activationFailed(interface: interface, code: status, detail: detail)
            }
        }
        precision =
            wantNano && pcap_get_tstamp_precision(raw) == Int32(PCAP_TSTAMP_PRECISION_NANO) ? .nanoseconds : .microseconds
        linkType = UInt32(bitPattern: pcap_datalink(raw))
        if !filter.isEmpty { try Self.apply(filter: filter, to: handle) }
        guard pcap_setnonblock(raw, 1, &errbuf) == 0 else {
            throw .activationFailed(interface: interface, code: -1, detail: Self.text(errbuf))
        }
        selectableFD = pcap_get_selectable_fd(raw)
        self.handle = handle
    }

    /// Replaces the BPF filter (e.g. once a server knows the port it bound).
    public func setFilter(_ filter: String) throws(LiveCaptureError) {
        try Self.apply(filter: filter, to: handle)
        self.filter = filter
    }

    private static func apply(filter: String, to handle: PcapHandle) throws(LiveCaptureError) {
        var program = bpf_program()
        guard pcap_compile(handle.raw, &program, filter, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
            throw .badFilter(filter: filter, detail: handle.lastError)
        }
        defer { pcap_freecode(&program) }
        guard pcap_setfilter(handle.raw, &program) == 0 else {
            throw .badFilter(filter: filter, detail: handle.lastError)
        }
    }

    /// Waits up to `timeoutMillis` for packets and hands each to `body` (at most `limit`).
    /// Returns how many were delivered; 0 on timeout.
    @discardableResult
    public func poll(timeoutMillis: Int32, limit: Int32 = 4096, _ body: (CapturedPacket) -> Void) throws(LiveCaptureError)
        -> Int
    {
        var pfd = pollfd(fd: selectableFD, events: Int16(POLLIN), revents: 0)
        let ready = Glibc.poll(&pfd, 1, timeoutMillis)
        if ready < 0 && errno != EINTR { throw .captureFailed(detail: String(cString: strerror(errno))) }
        var delivered = 0
        let nano = precision == .nanoseconds
        // Drain everything queued: pcap_next_ex returns 0 when nothing is left (non-blocking).
        while delivered < limit {
            var header: UnsafeMutablePointer<pcap_pkthdr>?
            var data: UnsafePointer<UInt8>?
            let status = pcap_next_ex(handle.raw, &header, &data)
            if status == 0 { break }
            if status < 0 {
                if status == PCAP_ERROR_BREAK { break }
                throw .captureFailed(detail: handle.lastError)
            }
            guard let header, let data else { continue }
            let h = header.pointee
            let fraction = Int64(h.ts.tv_usec)
            let nanos = Int64(h.ts.tv_sec) * 1_000_000_000 + (nano ? fraction : fraction * 1000)
            let bytes = Array(UnsafeBufferPointer(start: data, count: Int(h.caplen)))
            body(CapturedPacket(timestampNanos: nanos, originalLength: Int(h.len), data: bytes))
            delivered += 1
        }
        return delivered
    }

    /// Says so when the device refused nanosecond timestamps (nil when it gave them).
    public var precisionNote: String? {
        precision == .nanoseconds
            ? nil
            : "\(interface) offers only microsecond timestamps: wire times are truncated to 1 µs"
    }

    /// Kernel counters since activation.
    public func statistics() throws(LiveCaptureError) -> CaptureStatistics {
        var stats = pcap_stat()
        guard pcap_stats(handle.raw, &stats) == 0 else { throw .captureFailed(detail: handle.lastError) }
        return CaptureStatistics(
            received: UInt64(stats.ps_recv), dropped: UInt64(stats.ps_drop), interfaceDropped: UInt64(stats.ps_ifdrop))
    }

    public func close() { handle.close() }

    /// pcap's name for a link type, e.g. "EN10MB".
    public static func linkTypeName(_ linkType: UInt32) -> String {
        pcap_datalink_val_to_name(Int32(bitPattern: linkType)).map { String(cString: $0) } ?? "DLT \(linkType)"
    }

    static func text(_ buffer: [CChar]) -> String {
        buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// libpcap's version string.
    public static var libraryVersion: String { String(cString: pcap_lib_version()) }
}
