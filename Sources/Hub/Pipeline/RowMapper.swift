import Foundation

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
        /// Some outputs of the row yield records, others are refused (a `records:` list): the
        /// records are stored and the row is quarantined with the refused outputs' reasons.
        case partial([MappedRecord], [QuarantineReason])
    }

    public let mapping: Mapping
    public let period: Period
    private var resolvedFor: ObjectIdentifier? = nil
    /// Per output, per field: what the hot loop needs, worked out once per document layout.
    private var plans: [[FieldPlan?]] = []
    /// Per output with `unpivot:`: the matching columns' positions, headers and pattern groups.
    private var unpivotColumns: [[(position: Int, header: String, groups: [String])]] = []
    /// Per output: the positions of the key fields and the field positions by name (for `keep_if`).
    private let keyIndices: [[Int]]
    private let fieldIndex: [[String: Int]]
    /// Per output: the fields its `keep_if` reads (a bad value there is a reason, not a skip).
    private let keepIfFields: [Set<String>]

    /// One field of one output, resolved against a document's columns. A class, so the loop
    /// over a row's fields borrows it instead of copying a FieldSpec with all its references.
    final class FieldPlan {
        let spec: FieldSpec
        /// Column positions of the `from:` names (nil: not in this document).
        let positions: [Int?]
        /// The column a reason names when no value was found: the first of the `from:` names
        /// this document has (else the first listed).
        let column: String?
        let missingMessage: String
        init(spec: FieldSpec, positions: [Int?], title: String) {
            self.spec = spec; self.positions = positions
            self.column = zip(spec.from, positions).first { $0.1 != nil }?.0 ?? spec.from.first
            self.missingMessage = "缺少必填字段 \(title)"
        }
    }

    public init(mapping: Mapping, period: Period) {
        self.mapping = mapping.resolved(for: period)
        self.period = period
        keyIndices = mapping.outputs.map { out in out.key.map { k in out.type.fields.firstIndex(where: { $0.name == k })! } }
        fieldIndex = mapping.outputs.map { out in
            var d: [String: Int] = [:]
            for (i, f) in out.type.fields.enumerated() where d[f.name] == nil { d[f.name] = i }
            return d
        }
        keepIfFields = mapping.outputs.map { Set($0.keepIf?.names ?? []) }
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
        plans = mapping.outputs.map { out in
            out.fields.map { spec -> FieldPlan? in
                guard let spec else { return nil }
                // Several `from:` names may be alternatives (a department renamed a column
                // between exports): only when none of them exists is the column missing.
                let found = spec.from.map { columns.position(of: $0) }
                if columns.fixed, !spec.from.isEmpty, found.allSatisfy({ $0 == nil }) {
                    let name = spec.from[0]
                    missing.append((spec.name, name, Suggest.closest(to: name, in: columns.names), spec.location))
                }
                return FieldPlan(spec: spec, positions: found, title: out.type.field(spec.name)?.title ?? spec.name)
            }
        }
        unpivotColumns = mapping.outputs.map { out in
            guard let up = out.unpivot else { return [] }
            return columns.names.enumerated().compactMap { i, name in
                let ns = name as NSString
                guard let m = up.columns.regex.firstMatch(in: name, range: NSRange(location: 0, length: ns.length)) else { return nil }
                let groups = (1..<max(1, m.numberOfRanges)).map { g in m.range(at: g).location == NSNotFound ? "" : ns.substring(with: m.range(at: g)) }
                return (i, name, groups)
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

    @inline(__always) private static func blank(_ s: String) -> Bool {
        // Most values start with a visible ASCII character: no trimming needed to know.
        if let f = s.utf8.first, f > 0x20, f < 0x7F { return false }
        return FieldParser.trim(s).isEmpty
    }

    public func map(_ row: RawRow, document: String) throws -> Result {
        if let problem = row.problem { return .rejected([QuarantineReason(message: problem)]) }
        try resolve(row.columns)
        var reasons: [QuarantineReason] = []
        var records: [MappedRecord] = []
        var anyKept = false
        let rowHash = Hashing.fingerprint64(row.values)
        for oi in mapping.outputs.indices {
            let out = mapping.outputs[oi]
            let outPlans = plans[oi]
            var values = [Value](repeating: .null, count: outPlans.count)
            var outReasons: [QuarantineReason] = []
            /// Fields whose value was there but wrong (a missing one is no obstacle to keep_if).
            var invalid = Set<String>()
            /// A `split:` field: its position and its values, one record each.
            var split: (index: Int, values: [Value])? = nil
            for fi in outPlans.indices {
                guard let plan = outPlans[fi], plan.spec.expression == nil else { continue }
                let spec = plan.spec
                var text: String? = spec.constant
                var fromSource = spec.constant == nil
                // The column the value came from, for the reasons (the one present, not the first listed).
                var column = plan.column
                if spec.constant == nil {
                    let cols = plan.positions
                    switch spec.combine {
                    case .first:
                        for (k, p) in cols.enumerated() { if let p, let v = row.value(at: p), !Self.blank(v) { text = v; column = spec.from[k]; break } }
                    case .join:
                        let parts = cols.compactMap { $0.flatMap { row.value(at: $0) } }.map(FieldParser.trim).filter { !$0.isEmpty }
                        text = parts.isEmpty ? nil : parts.joined(separator: spec.separator)
                    case .sum:
                        var total: Value? = nil
                        for (k, p) in cols.enumerated() {
                            guard let p, let v = row.value(at: p), !Self.blank(v) else { continue }
                            switch FieldParser.parse(v, spec) {
                            case .success(let x):
                                total = Self.add(total, x)
                            case .failure(let why):
                                invalid.insert(spec.name)
                                outReasons.append(QuarantineReason(field: spec.name, column: spec.from[k], message: why))
                            }
                        }
                        if let total { values[fi] = total }
                        if values[fi].isNull && spec.required {
                            outReasons.append(QuarantineReason(field: spec.name, column: plan.column, message: plan.missingMessage))
                        }
                        continue
                    }
                }
                if text == nil || Self.blank(text!) { text = spec.defaultValue; fromSource = false }
                guard let t = text, !Self.blank(t) else {
                    if spec.required {
                        outReasons.append(QuarantineReason(field: spec.name, column: plan.column, message: plan.missingMessage))
                    }
                    continue
                }
                if let sep = spec.split, fromSource {
                    // "健康帮扶、产业帮扶": one record per value.
                    var parts: [Value] = []
                    for part in t.components(separatedBy: sep).map(FieldParser.trim) where !part.isEmpty {
                        switch FieldParser.parse(part, spec) {
                        case .success(let v): if !v.isNull { parts.append(v) }
                        case .failure(let why):
                            if spec.onInvalid == .empty { continue }
                            invalid.insert(spec.name)
                            outReasons.append(QuarantineReason(field: spec.name, column: column, message: why))
                        }
                    }
                    if parts.isEmpty && spec.required {
                        outReasons.append(QuarantineReason(field: spec.name, column: column, message: plan.missingMessage))
                    }
                    values[fi] = parts.first ?? .null
                    split = (fi, parts)
                    continue
                }
                switch FieldParser.parse(t, spec, fromSource: fromSource) {
                case .success(let v):
                    if v.isNull && spec.required {
                        outReasons.append(QuarantineReason(field: spec.name, column: column, message: plan.missingMessage))
                    }
                    values[fi] = v
                case .failure(let why):
                    if spec.onInvalid == .empty { continue }
                    invalid.insert(spec.name)
                    outReasons.append(QuarantineReason(field: spec.name, column: fromSource ? column : nil, message: fromSource ? why : "固定值或默认值 \"\(t)\"：\(why)"))
                }
            }
            // Computed fields (`expr:`), in declaration order, from the fields read above.
            for fi in outPlans.indices {
                guard let plan = outPlans[fi], let ex = plan.spec.expression else { continue }
                // Computed from a value that was invalid: invalid too (its reason is already there).
                if ex.names.contains(where: invalid.contains) { invalid.insert(plan.spec.name); continue }
                let index = fieldIndex[oi]
                let v = ExpressionEvaluator.evaluate(ex) { name in
                    if let i = index[name] { return values[i] }
                    return PeriodValues.variable(name, self.period) ?? .null
                }
                switch Self.typed(v, plan.spec) {
                case .success(let tv):
                    values[fi] = tv
                    if tv.isNull && plan.spec.required {
                        outReasons.append(QuarantineReason(field: plan.spec.name, message: "计算结果为空：\(plan.missingMessage)"))
                    }
                case .failure(let why):
                    invalid.insert(plan.spec.name)
                    outReasons.append(QuarantineReason(field: plan.spec.name, message: "计算字段（\(plan.spec.expressionText ?? "")）：\(why)"))
                }
            }
            // The output's records: one, or one per value of its `split:` field, or one per
            // column of its `unpivot:` (empty cells give none).
            var variants = [values]
            if let split, split.values.count > 1 {
                variants = split.values.map { v in var copy = values; copy[split.index] = v; return copy }
            }
            // A bad cell of an unpivoted row refuses that cell's record only: the row's other
            // months are stored, and the row goes to quarantine with the cell's reason.
            var cellReasons: [QuarantineReason] = []
            if let up = out.unpivot {
                let index = fieldIndex[oi]
                variants = []
                for (position, header, groups) in unpivotColumns[oi] {
                    guard let cell = row.value(at: position), !Self.blank(cell), let into = index[up.into.name] else { continue }
                    var v = values
                    switch FieldParser.parse(cell, up.into) {
                    case .success(let x): v[into] = x
                    case .failure(let why):
                        cellReasons.append(QuarantineReason(field: up.into.name, column: header, message: why))
                        continue
                    }
                    var ok = true
                    for (spec, template) in up.header {
                        var text = template
                        for (g, value) in groups.enumerated() { text = text.replacingOccurrences(of: "{\(g + 1)}", with: value) }
                        switch FieldParser.parse(text, spec, fromSource: false) {
                        case .success(let x): if let i = index[spec.name] { v[i] = x }
                        case .failure(let why):
                            ok = false
                            cellReasons.append(QuarantineReason(field: spec.name, column: header, message: "表头“\(header)”得出“\(text)”：\(why)"))
                        }
                    }
                    if ok { variants.append(v) }
                }
                if variants.isEmpty && outReasons.isEmpty && cellReasons.isEmpty { continue }
            }
            func labelled(_ list: [QuarantineReason]) -> [QuarantineReason] {
                // With several outputs, say which one was refused.
                mapping.outputs.count == 1 ? list : list.map { var r = $0; r.message = "（\(out.type.title)）" + r.message; return r }
            }
            // Each output on its own, keep_if first: an output that keep_if leaves out is skipped
            // even when other fields of it are bad or missing — unless keep_if reads a bad value itself.
            let keepIfReadsABadField = !invalid.isDisjoint(with: keepIfFields[oi])
            if let cond = out.keepIf, !keepIfReadsABadField {
                let index = fieldIndex[oi]
                variants = variants.filter { values in
                    let v = ExpressionEvaluator.evaluate(cond) { name in
                        if let i = index[name] { return values[i] }
                        return PeriodValues.variable(name, self.period) ?? .null
                    }
                    return ExpressionEvaluator.truth(v) == true
                }
                if variants.isEmpty { reasons += labelled(cellReasons); continue }
            }
            if !outReasons.isEmpty {
                reasons += labelled(outReasons + cellReasons)
                continue
            }
            reasons += labelled(cellReasons)
            if variants.isEmpty { continue }
            anyKept = true
            let keys = keyIndices[oi]
            for values in variants {
                let key = keys.count == 1 ? values[keys[0]].description : keys.map { values[$0].description }.joined(separator: "\u{1F}")
                records.append(MappedRecord(type: out.type, key: key, values: values, document: document, row: row.number, rowHash: rowHash))
            }
        }
        if !reasons.isEmpty { return records.isEmpty ? .rejected(reasons) : .partial(records, reasons) }
        return anyKept ? .records(records) : .skipped
    }

    /// An expression's value as the field's type holds it (numbers are yuan for money).
    static func typed(_ v: Value, _ spec: FieldSpec) -> FieldParser.Outcome {
        if v.isNull { return .success(.null) }
        switch (spec.type, v) {
        case (.money, .money), (.date, .date), (.datetime, .datetime), (.bool, .bool), (.integer, .integer), (.decimal, .decimal): return .success(v)
        case (.date, .datetime(let d, _)): return .success(.date(d))
        case (.datetime, .date(let d)): return .success(.datetime(d, 0))
        case (.money, _): return v.number.map { .success(.money(Int64(($0 * 100).rounded()))) } ?? .failure("不是金额：\(v)")
        case (.integer, _): return v.number.map { .success(.integer(Int64($0.rounded()))) } ?? .failure("不是整数：\(v)")
        case (.decimal, _): return v.number.map { .success(.decimal($0)) } ?? .failure("不是数值：\(v)")
        default:
            return FieldParser.parse(v.description, spec, fromSource: false)
        }
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
