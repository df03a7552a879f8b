import Foundation

/// When a source is pulled, in the county's local time (China Standard Time, UTC+8, no
/// daylight saving): `monthly on day 3 at 02:00`, `weekly on monday at 06:00`,
/// `daily at 01:30`, or a five-field cron expression `cron: 0 2 3 * *`.
public struct Schedule: Sendable, Hashable, CustomStringConvertible {
    /// Minutes, hours, days of month, months, days of week (0 = Sunday), as allowed sets.
    let minutes: Set<Int>, hours: Set<Int>, days: Set<Int>, months: Set<Int>, weekdays: Set<Int>
    let daysRestricted: Bool, weekdaysRestricted: Bool
    public let description: String
    /// Seconds east of UTC for the county (Asia/Shanghai: +8 h).
    public let utcOffset: Int

    public struct Invalid: Error, CustomStringConvertible { public var description: String }

    static let weekdayNames = ["sunday": 0, "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6,
                               "周日": 0, "周一": 1, "周二": 2, "周三": 3, "周四": 4, "周五": 5, "周六": 6]

    public init(_ text: String, utcOffset: Int = 8 * 3600) throws {
        description = text
        self.utcOffset = utcOffset
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        func time(_ s: Substring) throws -> (Int, Int) {
            let p = s.split(separator: ":")
            guard p.count == 2, let h = Int(p[0]), let m = Int(p[1]), (0...23).contains(h), (0...59).contains(m) else {
                throw Invalid(description: "时间应写作 HH:mm，如 02:00，实为 \(s)")
            }
            return (h, m)
        }
        let words = t.split(separator: " ")
        if t.hasPrefix("cron:") || (words.count == 5 && !["monthly", "weekly", "daily"].contains(String(words[0]))) {
            let fields = (t.hasPrefix("cron:") ? String(t.dropFirst(5)) : t).split(separator: " ").map(String.init)
            guard fields.count == 5 else { throw Invalid(description: "cron 表达式应有 5 段（分 时 日 月 周），实为 \(fields.count) 段") }
            minutes = try Self.field(fields[0], 0...59, "分"); hours = try Self.field(fields[1], 0...23, "时")
            days = try Self.field(fields[2], 1...31, "日"); months = try Self.field(fields[3], 1...12, "月")
            weekdays = Set(try Self.field(fields[4], 0...7, "周").map { $0 % 7 })
            daysRestricted = fields[2] != "*"; weekdaysRestricted = fields[4] != "*"
            return
        }
        // monthly on day D at HH:mm | weekly on DAY at HH:mm | daily at HH:mm
        guard let atIndex = words.firstIndex(of: "at"), atIndex + 1 < words.count else {
            throw Invalid(description: "计划应写作 monthly on day 3 at 02:00、weekly on monday at 06:00、daily at 01:00 或 cron: 0 2 3 * *")
        }
        let (h, m) = try time(words[atIndex + 1])
        minutes = [m]; hours = [h]; months = Set(1...12)
        switch words.first {
        case "monthly":
            guard words.count >= 5, words[1] == "on", words[2] == "day", let d = Int(words[3]), (1...31).contains(d) else {
                throw Invalid(description: "按月计划应写作 monthly on day 3 at 02:00")
            }
            days = [d]; weekdays = Set(0...6); daysRestricted = true; weekdaysRestricted = false
        case "weekly":
            guard words.count >= 4, words[1] == "on", let w = Self.weekdayNames[String(words[2])] else {
                throw Invalid(description: "按周计划应写作 weekly on monday at 06:00")
            }
            days = Set(1...31); weekdays = [w]; daysRestricted = false; weekdaysRestricted = true
        case "daily":
            days = Set(1...31); weekdays = Set(0...6); daysRestricted = false; weekdaysRestricted = false
        default:
            throw Invalid(description: "计划应以 monthly、weekly、daily 或 cron: 开头，实为 \(text)")
        }
    }

    static func field(_ s: String, _ range: ClosedRange<Int>, _ what: String) throws -> Set<Int> {
        var out = Set<Int>()
        for part in s.split(separator: ",") {
            var step = 1
            var body = Substring(part)
            if let slash = part.firstIndex(of: "/") {
                guard let st = Int(part[part.index(after: slash)...]), st > 0 else { throw Invalid(description: "cron 的\(what)段步长无效：\(part)") }
                step = st; body = part[..<slash]
            }
            let lo: Int, hi: Int
            if body == "*" { lo = range.lowerBound; hi = range.upperBound }
            else if let dash = body.firstIndex(of: "-"), let a = Int(body[..<dash]), let b = Int(body[body.index(after: dash)...]) { lo = a; hi = b }
            else if let v = Int(body) { lo = v; hi = step > 1 ? range.upperBound : v }
            else { throw Invalid(description: "cron 的\(what)段无法识别：\(part)") }
            guard range.contains(lo), range.contains(hi), lo <= hi else { throw Invalid(description: "cron 的\(what)段超出范围 \(range)：\(part)") }
            out.formUnion(stride(from: lo, through: hi, by: step))
        }
        return out
    }

    func matches(_ local: DateComponentsLite) -> Bool {
        guard minutes.contains(local.minute), hours.contains(local.hour), months.contains(local.month) else { return false }
        let dayOK = days.contains(local.day), weekdayOK = weekdays.contains(local.weekday)
        // As in cron: when both day-of-month and day-of-week are restricted, either may match.
        if daysRestricted && weekdaysRestricted { return dayOK || weekdayOK }
        return dayOK && weekdayOK
    }

    /// The first slot strictly after `date`.
    public func next(after date: Date) -> Date? {
        var t = (Int(date.timeIntervalSince1970) / 60 + 1) * 60
        let limit = t + 366 * 24 * 3600 * 5
        while t < limit {
            let local = DateComponentsLite(t + utcOffset)
            if !months.contains(local.month) { t += 60 * 60 * 24 - (local.hour * 3600 + local.minute * 60); continue }
            if matches(local) { return Date(timeIntervalSince1970: Double(t)) }
            if !hours.contains(local.hour) { t += 3600 - local.minute * 60; continue }
            t += 60
        }
        return nil
    }

    /// The latest slot at or before `date`, within the last `lookback` seconds.
    public func previous(atOrBefore date: Date, lookback: Int = 400 * 24 * 3600) -> Date? {
        var slot: Date? = nil
        var cursor = date.addingTimeInterval(-Double(lookback))
        while let n = next(after: cursor), n <= date { slot = n; cursor = n }
        return slot
    }
}

/// Calendar fields of a local time given as seconds since the epoch (already offset).
struct DateComponentsLite {
    var minute: Int, hour: Int, day: Int, month: Int, year: Int, weekday: Int
    init(_ localSeconds: Int) {
        let days = localSeconds >= 0 ? localSeconds / 86400 : (localSeconds - 86399) / 86400
        let secs = localSeconds - days * 86400
        let d = CivilDate(daysSinceEpoch: days)
        minute = secs / 60 % 60; hour = secs / 3600; day = d.day; month = d.month; year = d.year
        weekday = ((days % 7) + 7 + 4) % 7   // 1970-01-01 was a Thursday
    }
}

/// Bounded exponential backoff with jitter for retrying a failed pull: the delay doubles from
/// `base` up to `cap`, randomised to between half and all of it, for at most `maxAttempts`
/// tries and `maxTotal` seconds in all — a department's server is never hammered.
public struct Backoff: Sendable {
    public var base: Double = 60
    public var cap: Double = 1800
    public var maxAttempts = 6
    public var maxTotal: Double = 4 * 3600
    public init(base: Double = 60, cap: Double = 1800, maxAttempts: Int = 6, maxTotal: Double = 4 * 3600) {
        self.base = base; self.cap = cap; self.maxAttempts = maxAttempts; self.maxTotal = maxTotal
    }

    /// The wait before attempt `attempt` (2, 3, …) given the time already spent waiting; nil: give up.
    public func delay(beforeAttempt attempt: Int, waitedSoFar: Double, random: Double) -> Double? {
        guard attempt >= 2, attempt <= maxAttempts else { return nil }
        let full = min(cap, base * pow(2, Double(attempt - 2)))
        let d = full * (0.5 + 0.5 * min(max(random, 0), 1))
        guard waitedSoFar + d <= maxTotal else { return nil }
        return d
    }
}
