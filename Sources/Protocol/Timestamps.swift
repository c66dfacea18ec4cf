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
        let (fields, _) = split(nanos)
        return fields + "Z"
    }

    /// `2026-11-24T02:22:29.123456Z` — microseconds, as VOEvent Who/Date.
    public static func formatMicroseconds(nanos: Int64) -> String {
        let (fields, subsecondNanos) = split(nanos)
        let micros = subsecondNanos / 1000
        return fields + "." + pad(Int(micros), 6) + "Z"
    }

    private static func split(_ nanos: Int64) -> (String, Int64) {
        var seconds = nanos / 1_000_000_000
        var sub = nanos % 1_000_000_000
        if sub < 0 { sub += 1_000_000_000; seconds -= 1 }
        var t = time_t(seconds)
        var tmValue = tm()
        gmtime_r(&t, &tmValue)
        let text = pad(Int(tmValue.tm_year) + 1900, 4) + "-" + pad(Int(tmValue.tm_mon) + 1, 2) + "-"
            + pad(Int(tmValue.tm_mday), 2) + "T" + pad(Int(tmValue.tm_hour), 2) + ":"
            + pad(Int(tmValue.tm_min), 2) + ":" + pad(Int(tmValue.tm_sec), 2)
        return (text, sub)
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
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
        return epochSeconds * 1_000_000_000 + fractionNanos
    }
}
