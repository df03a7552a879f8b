/// An explicit date pattern such as `yyyy-MM-dd HH:mm:ss`, `yyyyMMdd` or `yyyy年M月d日`,
/// or one of the named forms `excel` (a spreadsheet serial day number), `unix` and `unix_ms`.
///
/// Letters: `yyyy` year, `MM`/`M` month, `dd`/`d` day, `HH`/`H` hour, `mm`/`m` minute,
/// `ss`/`s` second, `XXX` (or `X`, `XX`, `Z`) a UTC offset — `Z`, `+08:00`, `+0800` or `+08` —
/// after which the time is converted to the county's time (UTC+8). A doubled letter needs
/// exactly two digits; a single letter takes one or two.
/// Every other character must appear as written; quote letters to use them as text: `yyyy-MM-dd'T'HH:mm:ss`.
public struct DateFormat: Sendable, Hashable, CustomStringConvertible {
    enum Token: Sendable, Hashable {
        case year, month(fixed: Bool), day(fixed: Bool), hour(fixed: Bool), minute(fixed: Bool), second(fixed: Bool)
        case offset
        case literal(Character)
    }
    enum Kind: Sendable, Hashable { case pattern([Token]), excel, unix, unixMillis }

    let kind: Kind
    public let description: String
    /// Whether the pattern carries a time of day.
    public let hasTime: Bool

    /// Formats tried, in order, when a mapping gives none.
    public static let defaults: [DateFormat] = [
        "yyyy-M-d H:m:s", "yyyy-M-d H:m", "yyyy-M-d", "yyyy/M/d H:m:s", "yyyy/M/d", "yyyyMMddHHmmss", "yyyyMMdd",
        "yyyy年M月d日", "yyyy.M.d", "yyyy-M-d'T'H:m:s", "yyyy-M-d'T'H:m:sXXX", "yyyy-M-d H:m:sXXX", "yyyy-M-d'T'H:mXXX",
    ].map { try! DateFormat($0) }

    public struct Invalid: Error { public let reason: String }

    public init(_ text: String) throws {
        description = text
        switch text {
        case "excel": kind = .excel; hasTime = false; return
        case "unix": kind = .unix; hasTime = true; return
        case "unix_ms": kind = .unixMillis; hasTime = true; return
        default: break
        }
        var tokens: [Token] = []
        let chars = Array(text)
        var i = 0
        var sawYear = false, sawMonth = false, sawDay = false, sawHour = false
        while i < chars.count {
            let c = chars[i]
            if c == "'" {
                // 'T' — quoted letters are literal text.
                var j = i + 1
                while j < chars.count, chars[j] != "'" { tokens.append(.literal(chars[j])); j += 1 }
                i = j + 1
                continue
            }
            var run = 1
            while i + run < chars.count && chars[i + run] == c { run += 1 }
            switch c {
            case "y":
                guard run == 4 else { throw Invalid(reason: "年份须写作 yyyy") }
                tokens.append(.year); sawYear = true
            case "M":
                guard run <= 2 else { throw Invalid(reason: "月份写作 MM 或 M") }
                tokens.append(.month(fixed: run == 2)); sawMonth = true
            case "d":
                guard run <= 2 else { throw Invalid(reason: "日写作 dd 或 d") }
                tokens.append(.day(fixed: run == 2)); sawDay = true
            case "H":
                guard run <= 2 else { throw Invalid(reason: "小时写作 HH 或 H") }
                tokens.append(.hour(fixed: run == 2)); sawHour = true
            case "m":
                guard run <= 2 else { throw Invalid(reason: "分钟写作 mm 或 m") }
                tokens.append(.minute(fixed: run == 2))
            case "s":
                guard run <= 2 else { throw Invalid(reason: "秒写作 ss 或 s") }
                tokens.append(.second(fixed: run == 2))
            case "X", "Z":
                guard run <= 3 else { throw Invalid(reason: "时区偏移写作 XXX（+08:00、Z）") }
                tokens.append(.offset)
            default:
                if c.isLetter && c.isASCII { throw Invalid(reason: "格式中的字母 '\(c)' 无含义；可用 yyyy MM dd HH mm ss XXX") }
                for _ in 0..<run { tokens.append(.literal(c)) }
            }
            i += run
        }
        guard sawYear && sawMonth else { throw Invalid(reason: "格式至少要有 yyyy 和 M") }
        _ = sawDay
        kind = .pattern(tokens)
        hasTime = sawHour
    }

    /// Parses a date (and time, if the pattern has one). Returns nil when the text does not fit
    /// the pattern or names a day that does not exist (2026-02-30, 2026-13-45).
    /// Reads a pattern from UTF-8 bytes: digits are ASCII, literals compare byte for byte.
    private static func parse(_ u: UnsafeBufferPointer<UInt8>, _ tokens: [Token], hasTime: Bool) -> (CivilDate, Int)? {
        var i = 0
        var y = 0, mo = 0, d = 1, h = 0, mi = 0, s = 0
        var offset: Int? = nil
        func number(_ minDigits: Int, _ maxDigits: Int) -> Int? {
            var n = 0, k = 0
            while k < maxDigits, i < u.count, u[i] >= 48, u[i] <= 57 {
                n = n * 10 + Int(u[i]) - 48; i += 1; k += 1
            }
            return k >= minDigits ? n : nil
        }
        for t in tokens {
            switch t {
            case .year: guard let v = number(4, 4) else { return nil }; y = v
            case .month(let f): guard let v = number(f ? 2 : 1, 2) else { return nil }; mo = v
            case .day(let f): guard let v = number(f ? 2 : 1, 2) else { return nil }; d = v
            case .hour(let f): guard let v = number(f ? 2 : 1, 2) else { return nil }; h = v
            case .minute(let f): guard let v = number(f ? 2 : 1, 2) else { return nil }; mi = v
            case .second(let f): guard let v = number(f ? 2 : 1, 2) else { return nil }; s = v
            case .offset:
                // Fractional seconds may come before the offset.
                if i < u.count, u[i] == 0x2E { i += 1; while i < u.count, u[i] >= 48, u[i] <= 57 { i += 1 } }
                guard i < u.count else { return nil }
                if u[i] == 0x5A { offset = 0; i += 1; continue }   // Z
                guard u[i] == 0x2B || u[i] == 0x2D else { return nil }
                let sign = u[i] == 0x2D ? -1 : 1
                i += 1
                guard let oh = number(2, 2), oh <= 14 else { return nil }
                var om = 0
                if i < u.count, u[i] == 0x3A { i += 1; guard let m = number(2, 2) else { return nil }; om = m }
                else if i < u.count, u[i] >= 48, u[i] <= 57 { guard let m = number(2, 2) else { return nil }; om = m }
                guard om < 60 else { return nil }
                offset = sign * (oh * 3600 + om * 60)
            case .literal(let c):
                for x in c.utf8 {
                    guard i < u.count, u[i] == x else { return nil }
                    i += 1
                }
            }
        }
        // Allow fractional seconds (".000") after a time; nothing else may trail.
        if i < u.count, hasTime, u[i] == 0x2E { i += 1; while i < u.count, u[i] >= 48, u[i] <= 57 { i += 1 } }
        guard i == u.count, let date = CivilDate(year: y, month: mo, day: d), h < 24, mi < 60, s < 60 else { return nil }
        guard let offset else { return (date, h * 3600 + mi * 60 + s) }
        // To the county's time, UTC+8: the day may change.
        let local = date.daysSinceEpoch * 86400 + h * 3600 + mi * 60 + s - offset + 8 * 3600
        let days = local >= 0 ? local / 86400 : (local - 86399) / 86400
        return (CivilDate(daysSinceEpoch: days), local - days * 86400)
    }

    public func parse(_ text: String) -> (CivilDate, Int)? {
        switch kind {
        case .excel:
            guard let serial = Double(text), serial >= 1, serial < 2_958_466 else { return nil }
            // Excel counts 1900-02-29, which never existed; serials from 61 on are one day ahead.
            let whole = Int(serial.rounded(.down))
            let base = CivilDate(year: 1899, month: 12, day: 30)!.daysSinceEpoch
            let days = whole < 61 ? base + whole + 1 : base + whole
            let seconds = Int(((serial - Double(whole)) * 86400).rounded())
            return (CivilDate(daysSinceEpoch: days), min(seconds, 86399))
        case .unix, .unixMillis:
            guard let n = Int64(text) else { return nil }
            let secs = kind == .unix ? n : n / 1000
            // Source times are China Standard Time (UTC+8, no daylight saving).
            let local = secs + 8 * 3600
            let days = Int(local >= 0 ? local / 86400 : (local - 86399) / 86400)
            return (CivilDate(daysSinceEpoch: days), Int(local - Int64(days) * 86400))
        case .pattern(let tokens):
            var text = text
            return text.withUTF8 { u in Self.parse(u, tokens, hasTime: hasTime) }
        }
    }
}
