import Histogram

/// A latency histogram at microsecond resolution (the one inside `LatencyRecorder`), in a form
/// that can be stored, read back and merged: percentiles over any time range or set of runs
/// come from merged histograms, never from averaged percentiles.
///
/// Serialised as its non-empty buckets (`encoded()`): magic `VH`, format version 1, the number
/// of significant digits, the exact largest value, the bucket count, then per bucket the
/// distance of its lowest value from the previous bucket's and its count, all as LEB128
/// varints. An interval holds a few hundred buckets at most, so this is small, and it reads
/// back into exactly the same counts and maximum.
public struct LatencyHistogram: Sendable, Equatable {
    public private(set) var histogram: Histogram<UInt64>

    public init() {
        histogram = Histogram<UInt64>(numberOfSignificantValueDigits: .four)
        histogram.autoResize = true
    }

    init(_ histogram: Histogram<UInt64>) { self.histogram = histogram }

    public var totalCount: UInt64 { histogram.totalCount }

    public mutating func merge(_ other: LatencyHistogram) { FastHistogram.add(other.histogram, into: &histogram) }

    /// The value at `percentile` (0…100) in seconds; nil when empty.
    public func seconds(atPercentile percentile: Double) -> Double? {
        guard totalCount > 0 else { return nil }
        return Double(histogram.valueAtPercentile(percentile)) / 1e6
    }

    public var maxSeconds: Double? { totalCount > 0 ? Double(histogram.max) / 1e6 : nil }
    public var minSeconds: Double? { totalCount > 0 ? Double(histogram.min) / 1e6 : nil }
    public var meanSeconds: Double? { totalCount > 0 ? histogram.mean / 1e6 : nil }

    /// The HdrHistogram percentile distribution (`.hgrm`, as wrk2 -L prints it), values in
    /// milliseconds: `Value Percentile TotalCount 1/(1-Percentile)`, then `#[Mean …]`,
    /// `#[Max …]`, `#[Buckets …]`.
    public func percentileDistribution(ticksPerHalfDistance: Int = 5) -> String {
        var text = ""
        histogram.outputPercentileDistribution(
            to: &text, outputValueUnitScalingRatio: 1000, percentileTicksPerHalfDistance: ticksPerHalfDistance)
        return text
    }

    /// (percentile 0…100, seconds) points for a percentile-spectrum plot, up to the last value.
    public func spectrum(ticksPerHalfDistance: Int = 5) -> [(percentile: Double, seconds: Double)] {
        guard totalCount > 0 else { return [] }
        return histogram.percentiles(ticksPerHalfDistance: ticksPerHalfDistance).map {
            (percentile: $0.percentileLevelIteratedTo, seconds: Double($0.value) / 1e6)
        }
    }

    // MARK: serialisation

    public static let magic: [UInt8] = [0x56, 0x48]  // "VH"
    public static let formatVersion: UInt8 = 1
    /// Values beyond this are not latencies (a day is 8.64e10 µs); it also bounds the memory
    /// a crafted blob can make the histogram allocate.
    static let maximumValue: UInt64 = 1 << 50

    public func encoded() -> [UInt8] {
        var bytes = Self.magic + [Self.formatVersion, UInt8(histogram.numberOfSignificantValueDigits.rawValue)]
        let buckets = Array(histogram.recordedValues())
        Varint.append(totalCount > 0 ? histogram.maxRecorded : 0, to: &bytes)
        Varint.append(UInt64(buckets.count), to: &bytes)
        var previous: UInt64 = 0
        for bucket in buckets {
            let lowest = histogram.lowestEquivalentForValue(bucket.value)
            Varint.append(lowest - previous, to: &bytes)
            Varint.append(bucket.count, to: &bytes)
            previous = lowest
        }
        return bytes
    }

    /// Reads `encoded()` output back; throws on anything else (the bytes come from a file or a
    /// database anyone may have written).
    public init(decoding bytes: some Collection<UInt8>) throws(HistogramDecodingError) {
        var reader = Varint.Reader(Array(bytes))
        guard reader.take(2) == Self.magic else { throw .notAHistogram }
        guard let version = reader.take(1)?.first, version == Self.formatVersion else { throw .unknownVersion }
        guard let digits = reader.take(1)?.first, let significant = SignificantDigits(rawValue: Int8(clamping: digits)),
            significant.rawValue >= 1
        else { throw .malformed("significant digits") }
        guard let maximum = reader.next(), maximum <= Self.maximumValue else { throw .malformed("maximum") }
        // Sized for the stated maximum at once; a smaller one grows (fast) as buckets arrive.
        var histogram = FastHistogram.empty(covering: maximum, digits: significant)
        guard let buckets = reader.next(), buckets <= UInt64(reader.remaining) else { throw .malformed("bucket count") }
        var value: UInt64 = 0
        var total: UInt64 = 0
        for _ in 0..<buckets {
            guard let delta = reader.next(), let count = reader.next() else { throw .malformed("truncated") }
            let (next, overflow) = value.addingReportingOverflow(delta)
            guard !overflow, next <= Self.maximumValue, count > 0 else { throw .malformed("value out of range") }
            let (sum, countOverflow) = total.addingReportingOverflow(count)
            guard !countOverflow, sum <= UInt64(Int64.max) else { throw .malformed("count out of range") }
            value = next
            total = sum
            FastHistogram.ensure(&histogram, covers: value)
            histogram.record(value, count: count)
        }
        guard reader.remaining == 0 else { throw .malformed("trailing bytes") }
        // Buckets were recorded at their lowest value: the exact maximum, in the last bucket,
        // lifts it back (a count of 0 changes no count).
        if total > 0 {
            guard histogram.valuesAreEquivalent(maximum, value) else { throw .malformed("maximum outside the last bucket") }
            histogram.record(maximum, count: 0)
        }
        self.histogram = histogram
    }

    public static func == (lhs: LatencyHistogram, rhs: LatencyHistogram) -> Bool { lhs.histogram == rhs.histogram }
}

public enum HistogramDecodingError: Error, CustomStringConvertible, Equatable {
    case notAHistogram
    case unknownVersion
    case malformed(String)

    public var description: String {
        switch self {
        case .notAHistogram: return "not a stored latency histogram"
        case .unknownVersion: return "a latency histogram in a newer format than this vtpbench reads"
        case .malformed(let what): return "a damaged latency histogram (\(what))"
        }
    }
}

/// LEB128 unsigned varints.
enum Varint {
    static func append(_ value: UInt64, to bytes: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    struct Reader {
        private let bytes: [UInt8]
        private var index = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var remaining: Int { bytes.count - index }

        mutating func take(_ n: Int) -> [UInt8]? {
            guard remaining >= n else { return nil }
            defer { index += n }
            return Array(bytes[index..<index + n])
        }

        mutating func next() -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                guard shift < 64, shift < 63 || byte & 0x7F <= 1 else { return nil }
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
            return nil
        }
    }
}
