/// A cron expression with six fields, seconds first: `sec min hour day-of-month month day-of-week`.
///
/// Each field is `*`, a number, a range `a-b`, a list `a,b`, and any of these with a step `/n`.
/// Day of week counts from 0 (Sunday) to 6; 7 is Sunday too. Times are UTC.
public struct CronSchedule: Sendable, Hashable, CustomStringConvertible {
    public let expression: String
    let seconds: Set<Int>
    let minutes: Set<Int>
    let hours: Set<Int>
    let days: Set<Int>
    let months: Set<Int>
    let weekdays: Set<Int>
    let anyDay: Bool
    let anyWeekday: Bool

    public var description: String { expression }

    /// Parses the expression; the error says which field is wrong.
    public init(_ expression: String) throws(CronError) {
        let fields = expression.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 6 else {
            throw CronError(message: "expected six fields (second minute hour day month weekday), got \(fields.count)")
        }
        self.expression = expression
        seconds = try Self.field(fields[0], "second", 0...59)
        minutes = try Self.field(fields[1], "minute", 0...59)
        hours = try Self.field(fields[2], "hour", 0...23)
        days = try Self.field(fields[3], "day of month", 1...31)
        months = try Self.field(fields[4], "month", 1...12)
        weekdays = Set(try Self.field(fields[5], "day of week", 0...7).map { $0 % 7 })
        anyDay = fields[3] == "*" || fields[3] == "?"
        anyWeekday = fields[5] == "*" || fields[5] == "?"
    }

    static func field(_ text: String, _ name: String, _ range: ClosedRange<Int>) throws(CronError) -> Set<Int> {
        var values = Set<Int>()
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw CronError(message: "\(name): '\(item)' has more than one '/'") }
            var step = 1
            if parts.count == 2 {
                guard let s = Int(parts[1]), s > 0 else {
                    throw CronError(message: "\(name): step '\(parts[1])' is not a positive number")
                }
                step = s
            }
            var low = range.lowerBound
            var high = range.upperBound
            let base = parts[0]
            if base != "*" && base != "?" {
                let bounds = base.split(separator: "-", omittingEmptySubsequences: false)
                guard bounds.count <= 2, let a = Int(bounds[0]), let b = Int(bounds.last!), range.contains(a),
                    range.contains(b),
                    a <= b
                else {
                    throw CronError(message: "\(name): '\(item)' is not within \(range.lowerBound)-\(range.upperBound)")
                }
                low = a
                high = bounds.count == 2 || parts.count == 2 ? b : a
                if bounds.count == 1, parts.count == 2 { high = range.upperBound }
            }
            values.formUnion(stride(from: low, through: high, by: step))
        }
        return values
    }

    /// Whether the schedule fires in the given UTC second.
    public func matches(_ timestamp: Timestamp) -> Bool {
        let (_, month, day, weekday, secondOfDay, _) = timestamp.utc
        guard seconds.contains(secondOfDay % 60), minutes.contains(secondOfDay / 60 % 60),
            hours.contains(secondOfDay / 3600), months.contains(month)
        else { return false }
        // As in cron: with both day fields restricted, either may match.
        switch (anyDay, anyWeekday) {
        case (true, true): return true
        case (false, true): return days.contains(day)
        case (true, false): return weekdays.contains(weekday)
        case (false, false): return days.contains(day) || weekdays.contains(weekday)
        }
    }
}

/// Why a cron expression was refused.
public struct CronError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
