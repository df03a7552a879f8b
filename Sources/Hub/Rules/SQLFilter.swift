/// Translates the simple part of a rule's record filter into SQL, so rule evaluation reads only
/// the records it can use. The translation may only ever keep more rows than the filter would
/// (an untranslatable piece of an `and` is dropped, of an `or` gives up); the filter itself is
/// still applied to every row read, so results never depend on this.
enum SQLFilter {
    static func translate(_ e: Expression, _ type: RecordType) -> (sql: String, args: [Value])? {
        switch e {
        case .binary("and", let a, let b, _):
            let x = translate(a, type), y = translate(b, type)
            switch (x, y) {
            case let (x?, y?): return ("(\(x.sql) AND \(y.sql))", x.args + y.args)
            case let (x?, nil): return x
            case let (nil, y?): return y
            default: return nil
            }
        case .binary("or", let a, let b, _):
            guard let x = translate(a, type), let y = translate(b, type) else { return nil }
            return ("(\(x.sql) OR \(y.sql))", x.args + y.args)
        case .binary("in", .field(let name, _), .list(let items, _), _):
            guard let f = type.field(name) else { return nil }
            var args: [Value] = []
            for i in items {
                guard case .literal(let v, _) = i, let a = argument(v, f.type) else { return nil }
                args.append(a)
            }
            guard !args.isEmpty else { return nil }
            return ("\(SQLiteStore.quote(name)) IN (\(args.map { _ in "?" }.joined(separator: ", ")))", args)
        case .binary(let op, .field(let name, _), .literal(let v, _), _) where ["==", "!=", "<", "<=", ">", ">="].contains(op):
            guard let f = type.field(name), let a = argument(v, f.type) else { return nil }
            let col = SQLiteStore.quote(name)
            switch op {
            case "==": return ("\(col) = ?", [a])
            // In the expression language an empty value differs from any value.
            case "!=": return ("(\(col) IS NULL OR \(col) != ?)", [a])
            default: return ("\(col) \(op) ?", [a])
            }
        case .binary(let op, .literal(let v, let o), .field(let name, let o2), _) where ["==", "!=", "<", "<=", ">", ">="].contains(op):
            let flipped = ["<": ">", "<=": ">=", ">": "<", ">=": "<="][op] ?? op
            return translate(.binary(flipped, .field(name, offset: o2), .literal(v, offset: o), offset: o), type)
        default:
            return nil
        }
    }

    /// The stored form of a literal compared with a field (money in 分, booleans as 0/1).
    static func argument(_ v: Value, _ t: FieldType) -> Value? {
        switch (t, v) {
        case (.money, _): return v.number.map { .integer(Int64(($0 * 100).rounded())) }
        case (.integer, _), (.decimal, _): return v.number.map { .decimal($0) }
        case (.bool, .bool(let b)): return .integer(b ? 1 : 0)
        case (.text, .text), (.code, .text), (.residentID, .text), (.region, .text): return v
        default: return nil
        }
    }
}
