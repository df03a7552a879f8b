/// A monthly reporting period, `YYYY-MM`: the month a pull is about.
public struct Period: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let year: Int
    public let month: Int

    public init?(year: Int, month: Int) {
        guard (1900...2999).contains(year), (1...12).contains(month) else { return nil }
        self.year = year; self.month = month
    }

    /// Parses `2026-10` (also `2026/10`, `202610`).
    public init?(_ text: String) {
        let digits = text.filter(\.isNumber)
        let parts = text.split(whereSeparator: { $0 == "-" || $0 == "/" })
        if parts.count == 2, let y = Int(parts[0]), let m = Int(parts[1]), parts[0].count == 4 {
            self.init(year: y, month: m)
        } else if digits.count == 6, digits == text, let y = Int(digits.prefix(4)), let m = Int(digits.suffix(2)) {
            self.init(year: y, month: m)
        } else {
            return nil
        }
    }

    public var description: String { pad(year, 4) + "-" + pad(month, 2) }
    /// `202610`, for URLs that want it compact.
    public var compact: String { pad(year, 4) + pad(month, 2) }
    public var firstDay: CivilDate { CivilDate(year: year, month: month, day: 1)! }
    public var lastDay: CivilDate { CivilDate(year: year, month: month, day: CivilDate.daysIn(year: year, month: month))! }

    public func adding(months n: Int) -> Period {
        let total = year * 12 + (month - 1) + n
        return Period(year: total / 12, month: total % 12 + 1)!
    }

    public static func < (a: Period, b: Period) -> Bool { (a.year, a.month) < (b.year, b.month) }
}
