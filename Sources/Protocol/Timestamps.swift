#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall-clock time in nanoseconds since the Unix epoch (CLOCK_REALTIME): the only
/// clock two hosts can share, so it is what one-way latency is measured on.
public enum WallClock {
    public static func nowNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}

/// ISO-8601 / xs:dateTime formatting and parsing without Foundation (hot path, and
/// Foundation's formatters are slow and locale-sensitive).
public enum ISO8601Time {
    /// `2026-11-24T02:22:29Z` — the form Comet puts in Transport TimeStamps.
    public static func formatSeconds(nanos: Int64) -> String {
        var bytes = [UInt8](repeating: 0, count: 20)
        bytes.withUnsafeMutableBufferPointer { _ = write(nanos: nanos, microseconds: false, into: $0.baseAddress!) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `2026-11-24T02:22:29.123456Z` — microseconds, as VOEvent Who/Date.
    public static func formatMicroseconds(nanos: Int64) -> String {
        var bytes = [UInt8](repeating: 0, count: 27)
        bytes.withUnsafeMutableBufferPointer { _ = write(nanos: nanos, microseconds: true, into: $0.baseAddress!) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Length of what `write` produces.
    public static func formattedLength(microseconds: Bool) -> Int { microseconds ? 27 : 20 }

    /// Writes the timestamp as ASCII (20 or 27 bytes) without allocating: the sender and
    /// receiver format one per event. Civil-from-days after Howard Hinnant's algorithm.
    @discardableResult
    public static func write(nanos: Int64, microseconds: Bool, into out: UnsafeMutablePointer<UInt8>) -> Int {
        var seconds = nanos / 1_000_000_000
        var sub = nanos % 1_000_000_000
        if sub < 0 { sub += 1_000_000_000; seconds -= 1 }
        var days = seconds / 86_400
        var secondOfDay = seconds % 86_400
        if secondOfDay < 0 { secondOfDay += 86_400; days -= 1 }
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func digits(_ value: Int64, _ count: Int, at offset: Int) {
            var v = value
            for i in stride(from: offset + count - 1, through: offset, by: -1) {
                out[i] = UInt8(48 + v % 10)
                v /= 10
            }
        }
        digits(year, 4, at: 0); out[4] = 45
        digits(month, 2, at: 5); out[7] = 45
        digits(day, 2, at: 8); out[10] = 84
        digits(secondOfDay / 3600, 2, at: 11); out[13] = 58
        digits(secondOfDay / 60 % 60, 2, at: 14); out[16] = 58
        digits(secondOfDay % 60, 2, at: 17)
        guard microseconds else {
            out[19] = 90
            return 20
        }
        out[19] = 46
        digits(sub / 1000, 6, at: 20)
        out[26] = 90
        return 27
    }

    /// Parses an xs:dateTime (`YYYY-MM-DDThh:mm:ss[.frac][Z|±hh:mm]`); no zone means UTC,
    /// as VOEvent requires. Returns nanoseconds since the epoch, nil if malformed.
    public static func parseNanos(_ text: some StringProtocol) -> Int64? {
        let bytes = Array(text.utf8)
        var i = 0
        func number(_ count: Int) -> Int? {
            guard i + count <= bytes.count else { return nil }
            var value = 0
            for _ in 0..<count {
                let b = bytes[i]
                guard b >= 48 && b <= 57 else { return nil }
                value = value * 10 + Int(b - 48)
                i += 1
            }
            return value
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < bytes.count, bytes[i] == c else { return false }
            i += 1
            return true
        }
        guard let year = number(4), expect(45), let month = number(2), expect(45), let day = number(2),
            expect(84), let hour = number(2), expect(58), let minute = number(2), expect(58),
            let second = number(2)
        else { return nil }
        guard (1...12).contains(month), (1...31).contains(day), hour <= 24, minute <= 59, second <= 60 else {
            return nil
        }
        var fractionNanos: Int64 = 0
        if i < bytes.count, bytes[i] == 46 {  // '.'
            i += 1
            var digits = 0
            while i < bytes.count, bytes[i] >= 48, bytes[i] <= 57 {
                if digits < 9 { fractionNanos = fractionNanos * 10 + Int64(bytes[i] - 48) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            if digits < 9 { for _ in digits..<9 { fractionNanos *= 10 } }
        }
        var offsetSeconds = 0
        if i < bytes.count {
            if bytes[i] == 90 {  // 'Z'
                i += 1
            } else if bytes[i] == 43 || bytes[i] == 45 {  // '+' / '-'
                let sign = bytes[i] == 43 ? 1 : -1
                i += 1
                guard let oh = number(2), expect(58), let om = number(2) else { return nil }
                offsetSeconds = sign * (oh * 3600 + om * 60)
            } else {
                return nil
            }
        }
        guard i == bytes.count else { return nil }
        var tmValue = tm()
        tmValue.tm_year = Int32(year - 1900)
        tmValue.tm_mon = Int32(month - 1)
        tmValue.tm_mday = Int32(day)
        tmValue.tm_hour = Int32(hour)
        tmValue.tm_min = Int32(minute)
        tmValue.tm_sec = Int32(second)
        let epochSeconds = Int64(timegm(&tmValue)) - Int64(offsetSeconds)
        return nanos(seconds: epochSeconds, fraction: fractionNanos)
    }

    /// seconds × 10⁹ + fraction, nil outside Int64 (years before 1677 or after 2262:
    /// the text comes off the network). Int64.min itself is reached only with a
    /// fraction, as (seconds + 1) × 10⁹ − (10⁹ − fraction).
    private static func nanos(seconds: Int64, fraction: Int64) -> Int64? {
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if !overflow {
            let (sum, sumOverflow) = whole.addingReportingOverflow(fraction)
            return sumOverflow ? nil : sum
        }
        guard seconds < 0, fraction > 0 else { return nil }
        let (borrowed, borrowOverflow) = (seconds + 1).multipliedReportingOverflow(by: 1_000_000_000)
        guard !borrowOverflow else { return nil }
        let (sum, sumOverflow) = borrowed.addingReportingOverflow(fraction - 1_000_000_000)
        return sumOverflow ? nil : sum
    }
}
