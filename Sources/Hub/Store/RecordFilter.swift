/// Which records a rule reads, in the hub's own terms: fields, comparisons and typed values.
/// Each store translates it into its own query language; nothing above the store sees SQL.
///
/// Semantics (the expression language's): a comparison with an empty field is false, except
/// `notEqual`, which holds for an empty field (an empty value differs from any value). Values
/// are typed as the field is: money in 分 (`.money`), numbers as `.decimal`, `.bool`, text, and
/// `.date` — a date compared with a datetime field stands for the start of that day.
public indirect enum RecordFilter: Sendable, Hashable {
    public enum Comparison: String, Sendable, Hashable, CaseIterable {
        case equal = "==", notEqual = "!=", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="

        /// The same comparison with its sides swapped (`a < b` is `b > a`).
        var flipped: Comparison {
            switch self {
            case .less: return .greater
            case .lessOrEqual: return .greaterOrEqual
            case .greater: return .less
            case .greaterOrEqual: return .lessOrEqual
            default: return self
            }
        }
    }

    case compare(String, Comparison, Value)
    /// The field holds one of the values (never when empty).
    case oneOf(String, [Value])
    case all([RecordFilter])
    case any([RecordFilter])
    /// Records last written by this run (provenance `_run_id`).
    case writtenBy(run: Int64)
}

extension RecordFilter {
    /// The part of a rule's record filter that a store can apply while reading: it may only
    /// ever keep more records than `expression` would (an untranslatable piece of an `and` is
    /// dropped; of an `or`, the whole `or` is), so results never depend on it.
    public static func narrowing(_ expression: Expression, _ type: RecordType) -> RecordFilter? {
        switch expression {
        case .binary(.and, let a, let b, _):
            let parts = [narrowing(a, type), narrowing(b, type)].compactMap { $0 }
            return parts.isEmpty ? nil : parts.count == 1 ? parts[0] : .all(parts)
        case .binary(.or, let a, let b, _):
            guard let x = narrowing(a, type), let y = narrowing(b, type) else { return nil }
            return .any([x, y])
        case .binary(.in, .field(let name, _), .list(let items, _), _):
            guard let f = type.field(name) else { return nil }
            var values: [Value] = []
            for i in items {
                guard case .literal(let v, _) = i, let typed = typed(v, f.type) else { return nil }
                values.append(typed)
            }
            return values.isEmpty ? nil : .oneOf(name, values)
        case .binary(let op, .field(let name, _), .literal(let v, _), _):
            guard let c = Comparison(rawValue: op.rawValue), let f = type.field(name), let typed = typed(v, f.type) else { return nil }
            return .compare(name, c, typed)
        case .binary(let op, .literal(let v, _), .field(let name, _), _):
            guard let c = Comparison(rawValue: op.rawValue), let f = type.field(name), let typed = typed(v, f.type) else { return nil }
            return .compare(name, c.flipped, typed)
        default:
            return nil
        }
    }

    /// A literal as the field's type holds it (money in 分), or nil when they don't compare.
    static func typed(_ v: Value, _ t: FieldType) -> Value? {
        switch (t, v) {
        case (.money, _): return v.number.map { .money(Int64(($0 * 100).rounded())) }
        case (.integer, _), (.decimal, _): return v.number.map { .decimal($0) }
        case (.bool, .bool): return v
        case (.text, .text), (.code, .text), (.residentID, .text), (.region, .text): return v
        default: return nil
        }
    }

    /// Records whose `field` falls in [`from`, `until`): a rule's date window.
    public static func window(_ field: String, from: CivilDate, until: CivilDate) -> RecordFilter {
        .all([.compare(field, .greaterOrEqual, .date(from)), .compare(field, .less, .date(until))])
    }
}
