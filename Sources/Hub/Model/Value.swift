/// The type of a canonical record field, as declared in `Mappings/types/*.yaml`.
public enum FieldType: String, Sendable, CaseIterable, Hashable {
    case text
    case residentID = "resident_id"
    case date
    case datetime
    case money
    case integer
    case decimal
    case code
    case region
    case bool

    /// How the type is named to operators.
    public var chineseName: String {
        switch self {
        case .text: return "文本"
        case .residentID: return "身份证号"
        case .date: return "日期"
        case .datetime: return "日期时间"
        case .money: return "金额"
        case .integer: return "整数"
        case .decimal: return "小数"
        case .code: return "代码"
        case .region: return "行政区划代码"
        case .bool: return "是/否"
        }
    }
}

/// A typed field value of a canonical record.
public enum Value: Hashable, Sendable, CustomStringConvertible {
    case null
    case text(String)
    case integer(Int64)
    case decimal(Double)
    /// Money in 分 (1/100 yuan), exact.
    case money(Int64)
    case date(CivilDate)
    /// A date and the seconds since midnight, local to the source.
    case datetime(CivilDate, Int)
    case bool(Bool)

    public var isNull: Bool { if case .null = self { return true } else { return false } }

    /// The text form written to the store and shown to operators.
    public var description: String {
        switch self {
        case .null: return ""
        case .text(let s): return s
        case .integer(let i): return String(i)
        case .decimal(let d): return formatDecimal(d)
        case .money(let f): return Money.format(fen: f)
        case .date(let d): return d.description
        case .datetime(let d, let s): return d.description + " " + pad(s / 3600, 2) + ":" + pad(s / 60 % 60, 2) + ":" + pad(s % 60, 2)
        case .bool(let b): return b ? "true" : "false"
        }
    }

    /// A number view for comparisons in expressions: money in yuan.
    public var number: Double? {
        switch self {
        case .integer(let i): return Double(i)
        case .decimal(let d): return d
        case .money(let f): return Double(f) / 100
        default: return nil
        }
    }
}

func formatDecimal(_ d: Double) -> String {
    if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
    return String(d)
}

/// Money helpers: amounts are held in 分 as Int64 so sums are exact.
public enum Money {
    /// `123456` → `"1234.56"`.
    public static func format(fen: Int64) -> String {
        let sign = fen < 0 ? "-" : ""
        let a = fen.magnitude
        return sign + String(a / 100) + "." + pad(Int(a % 100), 2)
    }

    /// Parses an amount in yuan as written in exports: `1,234.56`, `￥1234`, `3.5万`, `(120.00)`.
    /// `scale` multiplies the written amount (10000 for a column in 万元). Returns 分, rounded half away from zero.
    public static func parse(_ raw: String, scale: Int64 = 1) -> Int64? {
        if let fast = plain(raw, scale: scale) { return fast }
        var negative = false
        var intPart: Int64 = 0
        var fracDigits: [Int64] = []
        var seenDigit = false, seenDot = false
        var scale = scale
        var s = Substring(raw)
        s = s.drop(while: { $0 == " " || $0 == "\u{3000}" })
        while let c = s.last, c == " " || c == "\u{3000}" { s = s.dropLast() }
        if s.hasPrefix("(") && s.hasSuffix(")") { negative = true; s = s.dropFirst().dropLast() }
        if s.hasSuffix("万元") { scale *= 10000; s = s.dropLast(2) }
        else if s.hasSuffix("元") { s = s.dropLast() }
        else if s.hasSuffix("万") { scale *= 10000; s = s.dropLast() }
        for c in s.unicodeScalars {
            switch c {
            case "0"..."9":
                let d = Int64(c.value - 48)
                seenDigit = true
                if seenDot { fracDigits.append(d) } else {
                    let (m, o1) = intPart.multipliedReportingOverflow(by: 10)
                    if o1 { return nil }
                    intPart = m + d
                }
            case ".":
                if seenDot { return nil }
                seenDot = true
            case ",", "，", " ", "¥", "￥":
                if seenDot && (c == "," || c == "，") { return nil }
            case "-", "−":
                if seenDigit || negative { return nil }
                negative = true
            case "+":
                if seenDigit { return nil }
            default:
                return nil
            }
        }
        guard seenDigit else { return nil }
        var frac: Int64 = 0, denominator: Int64 = 1
        for d in fracDigits.prefix(12) { frac = frac * 10 + d; denominator *= 10 }
        return fen(negative: negative, intPart: intPart, frac: frac, denominator: denominator, scale: scale)
    }

    /// The common form — ASCII digits with at most one dot and up to 12 decimals, maybe a
    /// leading minus — read straight from the bytes; nil for anything else (then the full
    /// parser decides).
    @inline(__always) static func plain(_ raw: String, scale: Int64) -> Int64? {
        raw.utf8.withContiguousStorageIfAvailable { b -> Int64? in
            guard !b.isEmpty else { return nil }
            var i = 0
            var negative = false
            if b[0] == 0x2D { negative = true; i = 1 }
            var intPart: Int64 = 0, frac: Int64 = 0, denominator: Int64 = 1
            var digits = 0, fracCount = 0, seenDot = false
            while i < b.count {
                let c = b[i]
                if c >= 0x30 && c <= 0x39 {
                    digits += 1
                    if seenDot {
                        fracCount += 1
                        if fracCount > 12 { return nil }
                        frac = frac * 10 + Int64(c - 0x30); denominator *= 10
                    } else {
                        if digits > 17 { return nil }
                        intPart = intPart * 10 + Int64(c - 0x30)
                    }
                } else if c == 0x2E && !seenDot {
                    seenDot = true
                } else {
                    return nil
                }
                i += 1
            }
            guard digits > 0 else { return nil }
            return fen(negative: negative, intPart: intPart, frac: frac, denominator: denominator, scale: scale)
        } ?? nil
    }

    /// (intPart + frac / denominator) × scale in 分, rounded half up; nil on overflow.
    private static func fen(negative: Bool, intPart: Int64, frac: Int64, denominator: Int64, scale: Int64) -> Int64? {
        let cents = scale * 100
        let (base, o) = intPart.multipliedReportingOverflow(by: cents)
        let (scaled, o2) = frac.multipliedReportingOverflow(by: cents)
        if o || o2 { return nil }
        var fracFen = scaled / denominator
        if (scaled % denominator) * 2 >= denominator { fracFen += 1 }
        let total = base + fracFen
        return negative ? -total : total
    }
}
