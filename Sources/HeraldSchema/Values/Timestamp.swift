/// An instant in milliseconds since 1970-01-01T00:00:00Z, with ISO 8601 parsing and formatting.
///
/// The canonical text form is `yyyy-MM-ddTHH:mm:ss.SSSZ`: fixed width and UTC, so it sorts
/// lexically in time order and storage can compare dates as text.
public struct Timestamp: Sendable, Hashable, Comparable {
    /// Milliseconds since the Unix epoch.
    public var millisecondsSince1970: Int64

    /// Instants from 0000-01-01 to 9999-12-31 (the years four digits can write).
    public static let representableRange: ClosedRange<Int64> = -62_167_219_200_000...253_402_300_799_999

    public init(millisecondsSince1970: Int64) {
        self.millisecondsSince1970 = millisecondsSince1970
    }

    /// The current wall-clock time.
    public static var now: Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(millisecondsSince1970: Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000)
    }

    public static func < (a: Timestamp, b: Timestamp) -> Bool {
        a.millisecondsSince1970 < b.millisecondsSince1970
    }

    /// Parses `YYYY-MM-DD`, optionally followed by `THH:MM[:SS[.fraction]]` and `Z`, `±HH:MM`
    /// or `±HHMM` (no offset means UTC). Returns `nil` for anything else or an invalid date.
    public init?(iso8601 text: String) {
        let b = Array(text.utf8)
        var i = 0
        func number(_ count: Int) -> Int? {
            guard i + count <= b.count else { return nil }
            var value = 0
            for k in 0..<count {
                let c = b[i + k]
                guard c >= 48, c <= 57 else { return nil }
                value = value * 10 + Int(c - 48)
            }
            i += count
            return value
        }
        func take(_ c: UInt8) -> Bool {
            if i < b.count, b[i] == c {
                i += 1
                return true
            }
            return false
        }
        guard let year = number(4), take(45), let month = number(2), take(45), let day = number(2) else { return nil }
        guard (1...12).contains(month), day >= 1, day <= Self.daysInMonth(year: year, month: month) else { return nil }
        var hour = 0
        var minute = 0
        var second = 0
        var millis = 0
        var offsetMinutes = 0
        if take(84) || take(116) || take(32) {  // 'T', 't' or ' '
            guard let h = number(2), take(58), let m = number(2) else { return nil }
            hour = h
            minute = m
            if take(58) {
                guard let s = number(2) else { return nil }
                second = s
                if take(46) || take(44) {
                    var digits = 0
                    var fraction = 0
                    while i < b.count, b[i] >= 48, b[i] <= 57 {
                        if digits < 3 { fraction = fraction * 10 + Int(b[i] - 48) }
                        digits += 1
                        i += 1
                    }
                    guard digits > 0 else { return nil }
                    for _ in digits..<max(digits, 3) { fraction *= 10 }
                    millis = fraction
                }
            }
            guard hour < 24, minute < 60, second < 60 else { return nil }
            if take(90) || take(122) {  // 'Z' or 'z'
            } else if i < b.count, b[i] == 43 || b[i] == 45 {  // '+' or '-'
                let sign = b[i] == 45 ? -1 : 1
                i += 1
                guard let oh = number(2) else { return nil }
                _ = take(58)
                guard let om = number(2), oh < 24, om < 60 else { return nil }
                offsetMinutes = sign * (oh * 60 + om)
            }
        }
        guard i == b.count else { return nil }
        let days = Self.daysFromCivil(year: year, month: month, day: day)
        let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetMinutes * 60)
        self.millisecondsSince1970 = seconds * 1000 + Int64(millis)
    }

    /// The UTC calendar fields of this instant; `weekday` counts from 0 (Sunday).
    public var utc: (year: Int, month: Int, day: Int, weekday: Int, secondOfDay: Int, millisecond: Int) {
        var days = millisecondsSince1970 / 86_400_000
        var rest = millisecondsSince1970 % 86_400_000
        if rest < 0 {
            rest += 86_400_000
            days -= 1
        }
        let (y, m, d) = Self.civilFromDays(Int(days))
        let weekday = Int(((days % 7) + 11) % 7)  // 1970-01-01 was a Thursday (4)
        return (y, m, d, weekday, Int(rest / 1000), Int(rest % 1000))
    }

    /// The canonical text form, `yyyy-MM-ddTHH:mm:ss.SSSZ` in UTC.
    public var iso8601: String {
        let (y, m, d, _, secondsOfDay, millisecond) = utc
        func pad(_ v: Int, _ width: Int) -> String {
            let s = String(v)
            return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
        }
        return
            "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(secondsOfDay / 3600, 2)):\(pad(secondsOfDay / 60 % 60, 2)):"
            + "\(pad(secondsOfDay % 60, 2)).\(pad(millisecond, 3))Z"
    }

    static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    // Howard Hinnant's days_from_civil / civil_from_days.
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif
