import Foundation

/// Values a mapping takes from the month being pulled, so that it never needs a monthly edit:
/// `{period}` (2026-10), `{period_compact}` (202610), `{period_start}` (2026-10-01),
/// `{period_end}` (2026-10-31), `{year}` (2026), `{month}` (10). Usable in paths and URLs, and
/// in a field's `value`, `default`, `map` (keys and values) and `extract`; in expressions the
/// same names are variables (`period`, `period_compact` as text, `period_start`, `period_end`
/// as dates).
public enum PeriodValues {
    public static let names = ["period", "period_compact", "period_start", "period_end", "year", "month"]

    public static func values(_ p: Period) -> [String: String] {
        ["period": p.description, "period_compact": p.compact, "period_start": p.firstDay.description,
         "period_end": p.lastDay.description, "year": String(p.year), "month": pad(p.month, 2)]
    }

    /// The value of a period variable in an expression (`period_start` …), or nil for other names.
    public static func variable(_ name: String, _ p: Period) -> Value? {
        switch name {
        case "period_start": return .date(p.firstDay)
        case "period_end": return .date(p.lastDay)
        case "period": return .text(p.description)
        case "period_compact": return .text(p.compact)
        default: return nil
        }
    }

    /// The names of the period variables in expressions, with their types.
    public static let variables: [String: ExprType] = ["period_start": .date, "period_end": .date, "period": .text, "period_compact": .text]

    /// Whether `text` holds a placeholder (known or not).
    public static func mentioned(in text: String) -> Bool { !placeholders(in: text).isEmpty }

    /// Placeholders in `text` whose name is not known. `{3}` and `{2,4}` (regular-expression
    /// counts) are not placeholders.
    public static func unknown(in text: String) -> [String] { placeholders(in: text).filter { !names.contains($0) } }

    /// Replaces the known placeholders with this period's values.
    public static func substitute(_ text: String, _ p: Period) -> String {
        guard text.contains("{") else { return text }
        var s = text
        for (name, value) in values(p) { s = s.replacingOccurrences(of: "{\(name)}", with: value) }
        return s
    }

    static func placeholders(in text: String) -> [String] {
        var out: [String] = []
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            let after = rest[rest.index(after: open)...]
            guard let close = after.firstIndex(of: "}") else { break }
            let name = after[..<close]
            if let f = name.first, f.isLetter || f == "_", name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) { out.append(String(name)) }
            rest = after[after.index(after: close)...]
        }
        return out
    }
}

extension FieldSpec {
    /// Whether the field takes anything from the period (see `PeriodValues`).
    var usesPeriod: Bool {
        [constant, defaultValue, extract?.pattern].contains { $0.map(PeriodValues.mentioned) ?? false }
            || (rawCodeMap ?? [:]).contains { PeriodValues.mentioned(in: $0.key) || PeriodValues.mentioned(in: $0.value) }
    }

    /// The field with the period's values filled in (itself when it uses none).
    func resolved(for period: Period) -> FieldSpec {
        guard usesPeriod else { return self }
        var s = self
        s.constant = constant.map { PeriodValues.substitute($0, period) }
        s.defaultValue = defaultValue.map { PeriodValues.substitute($0, period) }
        if let raw = rawCodeMap {
            var map: [String: String] = [:]
            for (k, v) in raw { map[Suggest.normalize(PeriodValues.substitute(k, period))] = PeriodValues.substitute(v, period) }
            s.codeMap = map
        }
        if let e = extract, let re = try? NSRegularExpression(pattern: PeriodValues.substitute(e.pattern, period)) {
            s.extract = NSRegularExpressionBox(re, e.pattern)
        }
        return s
    }
}

extension Mapping {
    /// The mapping as it reads one period: period values filled into its fields.
    public func resolved(for period: Period) -> Mapping {
        var m = self
        m.outputs = outputs.map { out in
            var o = out
            o.fields = out.fields.map { $0?.resolved(for: period) }
            return o
        }
        return m
    }
}
