/// Applies a mapping to raw rows: finds the columns, parses each field, checks required
/// fields and `keep_if`, and says for each row what it becomes.
public final class RowMapper {
    public enum Result {
        /// The row yields these records.
        case records([MappedRecord])
        /// `keep_if` left the row out on purpose.
        case skipped
        /// The row is refused, with every reason.
        case rejected([QuarantineReason])
    }

    public let mapping: Mapping
    public let period: Period
    private var resolvedFor: ObjectIdentifier? = nil
    /// For each output and field: the column positions of its `from:` names (nil: not present).
    private var positions: [[[Int?]]] = []

    public init(mapping: Mapping, period: Period) {
        self.mapping = mapping
        self.period = period
    }

    /// Columns named in the mapping that a tabular document lacks: a feed-level problem
    /// (the department changed its export), reported before any row is mapped.
    public struct MissingColumns: Error, CustomStringConvertible {
        public var source: String
        public var missing: [(field: String, column: String, suggestion: String?, location: SourceLocation)]
        public var available: [String]
        public var description: String {
            let list = missing.map { m in
                "字段 \(m.field) 的来源列 \"\(m.column)\" 不存在" + (m.suggestion.map { "，是否应为 \"\($0)\"？" } ?? "")
            }.joined(separator: "；")
            return "\(source)：\(list)（文件中的列：\(available.prefix(40).joined(separator: ", "))）"
        }
    }

    private func resolve(_ columns: Columns) throws {
        let id = ObjectIdentifier(columns)
        if resolvedFor == id { return }
        var missing: [(String, String, String?, SourceLocation)] = []
        positions = mapping.outputs.map { out in
            out.fields.map { spec in
                guard let spec else { return [] }
                // Several `from:` names may be alternatives (a department renamed a column
                // between exports): only when none of them exists is the column missing.
                let found = spec.from.map { columns.position(of: $0) }
                if columns.fixed, !spec.from.isEmpty, found.allSatisfy({ $0 == nil }) {
                    let name = spec.from[0]
                    missing.append((spec.name, name, Suggest.closest(to: name, in: columns.names), spec.location))
                }
                return found
            }
        }
        if !missing.isEmpty {
            // Report each missing column once, even if several outputs use it.
            var seen = Set<String>()
            let unique = missing.filter { seen.insert($0.1).inserted }
            throw MissingColumns(source: mapping.source, missing: unique.map { (field: $0.0, column: $0.1, suggestion: $0.2, location: $0.3) }, available: columns.names)
        }
        resolvedFor = id
    }

    public func map(_ row: RawRow, document: String) throws -> Result {
        if let problem = row.problem { return .rejected([QuarantineReason(message: problem)]) }
        try resolve(row.columns)
        var reasons: [QuarantineReason] = []
        var records: [MappedRecord] = []
        var anyKept = false
        let rowHash = Hashing.fingerprint(row.values)
        for (oi, out) in mapping.outputs.enumerated() {
            var values = [Value](repeating: .null, count: out.type.fields.count)
            var outReasons: [QuarantineReason] = []
            for (fi, spec) in out.fields.enumerated() {
                guard let spec else { continue }
                let column = spec.from.first
                var text: String? = spec.constant
                if spec.constant == nil {
                    let cols = positions[oi][fi]
                    switch spec.combine {
                    case .first:
                        for p in cols { if let p, let v = row.value(at: p), !FieldParser.trim(v).isEmpty { text = v; break } }
                    case .join:
                        let parts = cols.compactMap { $0.flatMap { row.value(at: $0) } }.map(FieldParser.trim).filter { !$0.isEmpty }
                        text = parts.isEmpty ? nil : parts.joined(separator: spec.separator)
                    case .sum:
                        var total: Value? = nil
                        for (k, p) in cols.enumerated() {
                            guard let p, let v = row.value(at: p), !FieldParser.trim(v).isEmpty else { continue }
                            switch FieldParser.parse(v, spec) {
                            case .success(let x):
                                total = Self.add(total, x)
                            case .failure(let why):
                                outReasons.append(QuarantineReason(field: spec.name, column: spec.from[k], message: why))
                            }
                        }
                        if let total { values[fi] = total }
                        if values[fi].isNull && spec.required {
                            outReasons.append(QuarantineReason(field: spec.name, column: column, message: "缺少必填字段 \(out.type.field(spec.name)?.title ?? spec.name)"))
                        }
                        continue
                    }
                }
                if text == nil || FieldParser.trim(text!).isEmpty { text = spec.defaultValue }
                guard let t = text, !FieldParser.trim(t).isEmpty else {
                    if spec.required {
                        outReasons.append(QuarantineReason(field: spec.name, column: column, message: "缺少必填字段 \(out.type.field(spec.name)?.title ?? spec.name)"))
                    }
                    continue
                }
                switch FieldParser.parse(t, spec) {
                case .success(let v):
                    values[fi] = v
                    if v.isNull && spec.required {
                        outReasons.append(QuarantineReason(field: spec.name, column: column, message: "缺少必填字段 \(out.type.field(spec.name)?.title ?? spec.name)"))
                    }
                case .failure(let why):
                    if spec.onInvalid == .empty { continue }
                    outReasons.append(QuarantineReason(field: spec.name, column: column, message: why))
                }
            }
            if !outReasons.isEmpty { reasons += outReasons; continue }
            if let cond = out.keepIf {
                let v = ExpressionEvaluator.evaluate(cond) { name in
                    if let i = out.type.fields.firstIndex(where: { $0.name == name }) { return values[i] }
                    if name == "period_start" { return .date(self.period.firstDay) }
                    if name == "period_end" { return .date(self.period.lastDay) }
                    return .null
                }
                if ExpressionEvaluator.truth(v) != true { continue }
            }
            anyKept = true
            let key = out.key.map { k in values[out.type.fields.firstIndex(where: { $0.name == k })!].description }.joined(separator: "\u{1F}")
            records.append(MappedRecord(type: out.type, key: key, values: values, document: document, row: row.number, rowHash: rowHash))
        }
        if !reasons.isEmpty { return .rejected(reasons) }
        return anyKept ? .records(records) : .skipped
    }

    static func add(_ a: Value?, _ b: Value) -> Value {
        guard let a else { return b }
        switch (a, b) {
        case (.money(let x), .money(let y)): return .money(x + y)
        case (.integer(let x), .integer(let y)): return .integer(x + y)
        default: return .decimal((a.number ?? 0) + (b.number ?? 0))
        }
    }
}
