internal import GRDB
import Hub

/// A `RecordFilter` as an SQLite `WHERE` clause over a record table, with its arguments in
/// the stored forms (money in 分, booleans 0/1, dates as `yyyy-MM-dd` text, which sorts like
/// the date and before any datetime of that day).
enum SQLiteFilter {
    static func sql(_ filter: RecordFilter) -> (sql: String, args: [DatabaseValue]) {
        switch filter {
        case .compare(let field, let op, let value):
            let col = SQLiteStore.quote(field), arg = SQLiteStore.databaseValue(value)
            switch op {
            case .equal: return ("\(col) = ?", [arg])
            // In the expression language an empty value differs from any value.
            case .notEqual: return ("(\(col) IS NULL OR \(col) != ?)", [arg])
            default: return ("\(col) \(op.rawValue) ?", [arg])
            }
        case .oneOf(let field, let values):
            guard !values.isEmpty else { return ("0", []) }
            return ("\(SQLiteStore.quote(field)) IN (\(databaseQuestionMarks(count: values.count)))", values.map(SQLiteStore.databaseValue))
        case .all(let parts), .any(let parts):
            guard !parts.isEmpty else { if case .all = filter { return ("1", []) } else { return ("0", []) } }
            let joiner: String
            if case .all = filter { joiner = " AND " } else { joiner = " OR " }
            let translated = parts.map(sql)
            return ("(" + translated.map(\.sql).joined(separator: joiner) + ")", translated.flatMap(\.args))
        case .writtenBy(let run):
            return ("_run_id = ?", [run.databaseValue])
        }
    }
}
