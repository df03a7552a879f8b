import Foundation

/// `hubd mapping init`: a first mapping for a sample file and a record type. It finds the
/// format (CSV, XLSX, JSON, NDJSON, XML), the encoding, the delimiter, title rows above the
/// header and 合计 rows below it, where a JSON file's records are and which XML element is a
/// record; then places each column on a field of the type — by title, by the synonyms the type
/// file declares, and by content (ID numbers that pass GB 11643, dates, amounts, short code
/// lists, yes/no) — and says for each field why, or that it found nothing.
public struct MappingDraft: Sendable {
    public struct Placement: Sendable {
        public var field: RecordType.Field
        public var column: String
        public var evidence: String
        /// Values seen when a code column's values are not the type's: a `map:` to fill in.
        public var mapStub: [String]
        /// A date format the default formats do not cover (`yyyyMM`, `excel`…).
        public var format: String? = nil
        /// The separator of a cell holding several code values.
        public var split: String? = nil
    }
    public var type: RecordType
    public var formatName: String
    /// The format's lines of YAML (`format:` and its options).
    public var formatYAML: [String]
    public var format: FeedFormat
    public var columns: [String]
    public var rowsRead: Int
    public var placements: [Placement]
    /// Fields nothing was found for.
    public var missing: [RecordType.Field]

    public struct Failure: Error, CustomStringConvertible { public let description: String }

    // MARK: sniffing

    public static func draft(bytes: [UInt8], fileName: String, type: RecordType, sampleRows: Int = 1000) throws -> MappingDraft {
        if bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) {
            // A workbook: each sheet tried, the one whose columns fit the type best kept.
            var best: MappingDraft? = nil
            for (i, sheet) in XLSXDecoder.sheetNames(bytes).enumerated() {
                guard var (format, yaml) = try? sniffXLSX(bytes, sheet: sheet), let (columns, rows) = try? decode(bytes, format, limit: sampleRows), !rows.isEmpty else { continue }
                if i > 0, var o = format.options as? XLSXOptions {
                    o.sheet = sheet
                    format = .xlsx(o)
                    yaml[1] = yaml[1].replacingOccurrences(of: "xlsx: { ", with: "xlsx: { sheet: \(quoted(sheet)), ")
                }
                var d = MappingDraft(type: type, formatName: format.name, formatYAML: yaml, format: format, columns: columns, rowsRead: rows.count, placements: [], missing: [])
                d.place(rows)
                if d.placements.count > best?.placements.count ?? -1 { best = d }
            }
            if let best { return best }
        }
        let (format, yaml) = try sniff(bytes, fileName: fileName)
        let (columns, rows) = try decode(bytes, format, limit: sampleRows)
        guard !columns.isEmpty, !rows.isEmpty else { throw Failure(description: "样本里没有读出数据行（格式：\(format.name)）") }
        var d = MappingDraft(type: type, formatName: format.name, formatYAML: yaml, format: format, columns: columns, rowsRead: rows.count, placements: [], missing: [])
        d.place(rows)
        return d
    }

    static func sniff(_ bytes: [UInt8], fileName: String) throws -> (FeedFormat, [String]) {
        if bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return try sniffXLSX(bytes, sheet: nil) }
        var body = bytes
        if body.starts(with: [0xEF, 0xBB, 0xBF]) { body.removeFirst(3) }
        let first = body.first { !($0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09) }
        if first == UInt8(ascii: "<") { return try sniffXML(body) }
        if first == UInt8(ascii: "{") || first == UInt8(ascii: "[") { return try sniffJSON(body) }
        return try sniffCSV(bytes)
    }

    static func isUTF8(_ bytes: [UInt8]) -> Bool {
        let window = Array(bytes.prefix(1 << 16))
        // A multi-byte character cut at the end of the window is not an error.
        let cut = window.count < bytes.count ? 3 : 0
        return (0...cut).contains { String(validating: window.dropLast($0), as: UTF8.self) != nil }
    }

    static func sniffCSV(_ bytes: [UInt8]) throws -> (FeedFormat, [String]) {
        var o = CSVOptions()
        let utf8 = isUTF8(bytes)
        o.encoding = utf8 ? .utf8 : .gb18030
        let text = utf8 ? String(decoding: bytes.prefix(1 << 16), as: UTF8.self)
            : (String(data: Data(bytes.prefix(1 << 16)), encoding: String.Encoding(rawValue: 0x8000_0632)) ?? "")
        let lines = text.split(whereSeparator: \.isNewline).prefix(30).map(String.init)
        // The delimiter that splits the most lines the same number of times.
        var best: (UInt8, Int) = (UInt8(ascii: ","), -1)
        for d in [",", "\t", ";", "|"] {
            let counts = lines.map { $0.filter { String($0) == d }.count }.filter { $0 > 0 }
            let common = Dictionary(grouping: counts, by: { $0 }).max { $0.value.count < $1.value.count }
            let score = (common?.value.count ?? 0) * 100 + (common?.key ?? 0)
            if score > best.1 { best = (UInt8(ascii: Unicode.Scalar(d)!), score) }
        }
        o.delimiter = best.0
        // Title rows: the header is the first row with nearly as many filled cells as the widest.
        var probe = o
        probe.headerRow = 0
        let (_, raw) = try decode(bytes, .csv(probe), limit: 5000)
        let filled = raw.prefix(15).map { $0.filter { !($0 ?? "").trimmingCharacters(in: .whitespaces).isEmpty }.count }
        let widest = filled.max() ?? 0
        let header = filled.firstIndex { Double($0) >= Double(widest) * 0.8 } ?? 0
        o.headerRow = header + 1
        // 合计 rows at the end.
        var footer = 0
        for row in raw.reversed().prefix(5) {
            let firstCell = row.first { !($0 ?? "").isEmpty } ?? nil
            if let c = firstCell, ["合计", "总计", "小计", "总数"].contains(where: { c.trimmingCharacters(in: .whitespaces).hasPrefix($0) }) { footer += 1 } else { break }
        }
        o.footerRows = footer
        var yaml = ["format: csv"]
        var opts: [String] = ["encoding: \(o.encoding.rawValue)"]
        if o.delimiter != UInt8(ascii: ",") { opts.append("delimiter: \"\(o.delimiter == 9 ? "\\t" : String(UnicodeScalar(o.delimiter)))\"") }
        if o.headerRow != 1 { opts.append("header_row: \(o.headerRow)") }
        if footer > 0 { opts.append("footer_rows: \(footer)") }
        yaml.append("csv: { \(opts.joined(separator: ", ")) }" + (o.headerRow != 1 ? "   # 表头上面有 \(o.headerRow - 1) 行标题" : "") + (footer > 0 ? "；末尾 \(footer) 行是合计" : ""))
        return (.csv(o), yaml)
    }

    static func sniffXLSX(_ bytes: [UInt8], sheet: String?) throws -> (FeedFormat, [String]) {
        var o = XLSXOptions()
        o.sheet = sheet
        let (names, raw) = try decode(bytes, .xlsx(o), limit: 50)
        let rows = [names.map { Optional($0) }] + raw
        let filled = rows.prefix(15).map { $0.filter { !($0 ?? "").trimmingCharacters(in: .whitespaces).isEmpty }.count }
        let widest = filled.max() ?? 0
        o.headerRow = (filled.firstIndex { Double($0) >= Double(widest) * 0.8 } ?? 0) + 1
        return (.xlsx(o), ["format: xlsx", "xlsx: { header_row: \(o.headerRow) }" + (o.headerRow > 1 ? "   # 表头上面有 \(o.headerRow - 1) 行标题；不是第一个工作表时加 sheet: 工作表名" : "   # 不是第一个工作表时加 sheet: 工作表名")])
    }

    static func sniffJSON(_ body: [UInt8]) throws -> (FeedFormat, [String]) {
        if let whole = try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]) {
            var best: (path: [String], count: Int) = ([], -1)
            func walk(_ v: Any, _ path: [String]) {
                if let a = v as? [Any] {
                    if a.first is [String: Any], a.count > best.count { best = (path, a.count) }
                } else if let d = v as? [String: Any] {
                    for (k, x) in d { walk(x, path + [k]) }
                }
            }
            walk(whole, [])
            guard best.count >= 0 else { throw Failure(description: "JSON 里没有找到记录数组") }
            var o = JSONOptions()
            o.recordsAt = best.path
            // A "next page" cursor beside the records (next, next_cursor, nextPageToken, scroll_id…).
            var cursor: [String]? = nil
            func findCursor(_ v: Any, _ path: [String]) {
                guard cursor == nil, let d = v as? [String: Any] else { return }
                for k in d.keys.sorted() {
                    let name = k.lowercased().replacingOccurrences(of: "_", with: "")
                    if ["next", "nextcursor", "cursor", "nexttoken", "nextpagetoken", "pagetoken", "scrollid", "nextkey", "lastkey"].contains(name),
                       d[k] is String || d[k] is NSNull || d[k] is NSNumber {
                        cursor = path + [k]; return
                    }
                    findCursor(d[k]!, path + [k])
                }
            }
            findCursor(whole, [])
            o.cursorAt = cursor
            var options: [String] = []
            if !best.path.isEmpty { options.append("records_at: \(best.path.joined(separator: "."))") }
            if let cursor { options.append("cursor_at: \(cursor.joined(separator: "."))") }
            let comment = cursor == nil ? "   # 记录数组所在的位置" : "   # 记录数组和下一页游标的位置；按游标分页时在 fetch 里加 page: { style: cursor, param: 游标参数名 }"
            return (.json(o), ["format: json"] + (options.isEmpty ? [] : ["json: { \(options.joined(separator: ", ")) }" + comment]))
        }
        // One object per line.
        let lines = String(decoding: body.prefix(1 << 16), as: UTF8.self).split(whereSeparator: \.isNewline)
        if lines.prefix(5).allSatisfy({ (try? JSONSerialization.jsonObject(with: Data($0.utf8))) is [String: Any] }) { return (.ndjson, ["format: ndjson"]) }
        throw Failure(description: "看起来是 JSON，但无法解析")
    }

    static func sniffXML(_ body: [UInt8]) throws -> (FeedFormat, [String]) {
        // A light walk over the tags (the sample only: libxml2 reads the real feed): the element
        // that occurs most often with elements inside it, below the root, is the record.
        var stack: [(name: String, hasChildren: Bool)] = []
        var records: [String: Int] = [:]
        let b = Array(body.prefix(4 << 20))
        var i = 0
        while i < b.count {
            guard b[i] == UInt8(ascii: "<"), i + 1 < b.count else { i += 1; continue }
            var j = i + 1
            while j < b.count && b[j] != UInt8(ascii: ">") { j += 1 }
            guard j < b.count else { break }
            let tag = b[(i + 1)..<j]
            i = j + 1
            guard let c = tag.first, c != UInt8(ascii: "?"), c != UInt8(ascii: "!") else { continue }
            let closing = c == UInt8(ascii: "/")
            let selfClosing = tag.last == UInt8(ascii: "/")
            let nameBytes = tag.drop { $0 == UInt8(ascii: "/") }.prefix { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D && $0 != UInt8(ascii: "/") }
            let full = String(decoding: nameBytes, as: UTF8.self)
            let name = full.split(separator: ":").last.map(String.init) ?? full
            if closing {
                guard let top = stack.popLast() else { continue }
                if top.hasChildren && !stack.isEmpty { records[top.name, default: 0] += 1 }
            } else {
                if !stack.isEmpty { stack[stack.count - 1].hasChildren = true }
                if !selfClosing { stack.append((name, false)) }
            }
        }
        guard let record = records.max(by: { ($0.value, $1.key) < ($1.value, $0.key) })?.key else { throw Failure(description: "XML 里没有找到重复的记录元素") }
        return (.xml(XMLOptions(recordElement: record)), ["format: xml", "xml: { record: \(record) }   # 每个 <\(record)> 是一条记录"])
    }

    /// The column names and up to `limit` rows of a document.
    static func decode(_ bytes: [UInt8], _ format: FeedFormat, limit: Int) throws -> ([String], [[String?]]) {
        var d = format.makeDecoder()
        var names: [String] = [], rows: [[String?]] = []
        func take(_ r: RawRow) {
            if r.columns.names.count > names.count { names = r.columns.names }
            if rows.count < limit && r.problem == nil { rows.append(r.values) }
        }
        try bytes.withUnsafeBytes { b in
            try d.feed(b) { take($0) }
            _ = try d.finish { take($0) }
        }
        return (names, rows)
    }

    // MARK: placing columns

    static let booleans: Set<String> = ["是", "否", "有", "无", "1", "0", "true", "false", "y", "n", "yes", "no"]

    mutating func place(_ rows: [[String?]]) {
        func values(_ i: Int) -> [String] {
            rows.compactMap { i < $0.count ? $0[i]?.trimmingCharacters(in: .whitespaces) : nil }.filter { !$0.isEmpty }
        }
        let normalized = columns.map { Suggest.normalize($0) }
        var candidates: [(score: Double, field: Int, column: Int, evidence: String, fit: Fit)] = []
        for (fi, f) in type.fields.enumerated() {
            let titles = [f.title, f.name] + f.synonyms
            for (ci, header) in normalized.enumerated() where !header.isEmpty {
                var score = 0.0
                var why: [String] = []
                if let t = titles.first(where: { Suggest.normalize($0) == header }) {
                    score += 10; why.append("列名“\(columns[ci])”\(t == f.title ? "与字段标题相同" : t == f.name ? "与字段名相同" : "是类型文件里的同义词")")
                } else if let t = titles.first(where: { let n = Suggest.normalize($0); return n.count >= 2 && (header.contains(n) || (header.count >= 2 && n.contains(header))) }) {
                    score += 6; why.append("列名“\(columns[ci])”与“\(t)”相近")
                }
                let vs = values(ci)
                guard !vs.isEmpty else { if score > 0 { candidates.append((score - 2, fi, ci, why.joined(separator: "；") + "（样本里这一列是空的）", Fit(score: 0))) }; continue }
                let fit = Self.fit(f, vs)
                score += fit.score
                if let note = fit.note { why.append(note) }
                if score >= 6 { candidates.append((score, fi, ci, why.joined(separator: "；"), fit)) }
            }
        }
        var usedFields = Set<Int>(), usedColumns = Set<Int>()
        for c in candidates.sorted(by: { ($0.score, -$0.column) > ($1.score, -$1.column) }) where !usedFields.contains(c.field) && !usedColumns.contains(c.column) {
            usedFields.insert(c.field); usedColumns.insert(c.column)
            placements.append(Placement(field: type.fields[c.field], column: columns[c.column], evidence: c.evidence, mapStub: c.fit.stub,
                                        format: c.fit.format, split: c.fit.split))
        }
        placements.sort { a, b in type.fields.firstIndex { $0.name == a.field.name }! < type.fields.firstIndex { $0.name == b.field.name }! }
        missing = type.fields.enumerated().filter { !usedFields.contains($0.offset) }.map(\.element)
    }

    /// How well a column's values fit a field's type: a score to add, what was seen, a date
    /// format beyond the defaults, a separator of several values in a cell, and a `map:` stub for
    /// a code field whose values are the department's own.
    struct Fit { var score: Double; var note: String? = nil; var stub: [String] = []; var format: String? = nil; var split: String? = nil }

    static let extraDateFormats = ["yyyyMM", "yyyy/MM/dd HH:mm", "yyyy/M/d H:mm", "yyyy/M/d", "yyyy年M月d日", "yyyy年M月", "yyyy.MM.dd", "yyyyMMddHHmmss"]

    static func fit(_ f: RecordType.Field, _ vs: [String]) -> Fit {
        let n = Double(vs.count)
        func ratio(_ ok: (String) -> Bool) -> Double { Double(vs.filter(ok).count) / n }
        let bad = Fit(score: -12)
        switch f.type {
        case .residentID:
            let r = ratio { (try? ResidentID(parsing: $0)) != nil }
            return r >= 0.8 ? Fit(score: 9, note: "\(Int(r * 100))% 的值通过身份证号校验") : bad
        case .date, .datetime:
            let r = ratio { v in DateFormat.defaults.contains { $0.parse(v) != nil } }
            if r >= 0.8 { return Fit(score: 3, note: "\(Int(r * 100))% 的值是日期") }
            if ratio({ v in Double(v).map { $0 > 20000 && $0 < 80000 } ?? false }) >= 0.8 {
                return Fit(score: 3, note: "值是 Excel 的日期序号", format: "[excel, yyyy-MM-dd]")
            }
            for text in extraDateFormats {
                guard let df = try? DateFormat(text) else { continue }
                let r = ratio { df.parse($0) != nil }
                if r >= 0.8 { return Fit(score: 3, note: "\(Int(r * 100))% 的值是 \(text) 格式的日期", format: text) }
            }
            return bad
        case .money, .decimal, .integer:
            return ratio({ Money.parse($0) != nil }) >= 0.9 ? Fit(score: 2) : bad
        case .region:
            let r = ratio { v in [6, 9, 12].contains(v.count) && v.allSatisfy(\.isNumber) }
            return r >= 0.9 ? Fit(score: 3, note: "\(Int(r * 100))% 的值是行政区划代码") : bad
        case .bool:
            let r = ratio { booleans.contains($0.lowercased()) }
            return r >= 0.9 ? Fit(score: 2, note: "值只有\(Set(vs).sorted().prefix(4).joined(separator: "、"))") : bad
        case .code:
            let distinct = Array(Set(vs)).sorted()
            if !f.values.isEmpty, distinct.allSatisfy(f.values.contains) { return Fit(score: 3, note: "值都在代码表中：\(distinct.prefix(6).joined(separator: "、"))") }
            // Several values in one cell, each of them the type's.
            for sep in ["、", ",", "，", ";", "；", "|", "/"] where !f.values.isEmpty {
                let parts = vs.flatMap { $0.components(separatedBy: sep).map { $0.trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty }
                if vs.contains(where: { $0.contains(sep) }), parts.allSatisfy(f.values.contains) {
                    return Fit(score: 3, note: "一格里有多个值，用“\(sep)”分开，都在代码表中", split: sep)
                }
            }
            if distinct.count <= 20 { return Fit(score: 0, note: "值不在代码表中，需要 map：\(distinct.prefix(8).joined(separator: "、"))", stub: distinct) }
            return bad
        case .text:
            return Fit(score: 0)
        }
    }

    // MARK: the YAML

    /// The mapping file: commented, with each field's evidence and a TODO for each field that
    /// could not be placed; `source` and the fetch are to be checked by the operator.
    public func yaml(source: String, samplePath: String, fetch: [String]? = nil) -> String {
        var out = [
            "# 由 hubd mapping init 根据样本 \(samplePath) 生成（\(rowsRead) 行样本，\(columns.count) 列）。",
            "# 每个字段后面的注释说明为什么这样对应；请逐项核对，改完用 hubd mapping try 试。",
            "source: \(source)",
            "title: \(type.title)",
            "department: TODO 部门名称",
            "",
        ] + (fetch ?? [
            "connector: file                 # 部门的接口用 http，见 README“连接器”",
            "fetch: { path: \(Self.quoted(samplePath)) }",
        ]) + [
            "",
        ] + formatYAML + ["", "record: \(type.name)", "key: [\(type.key.joined(separator: ", "))]", "fields:"]
        for p in placements {
            let column = Self.quoted(p.column)
            var line = "  \(p.field.name): "
            var extras: [String] = []
            if let format = p.format { extras.append("format: \(format.hasPrefix("[") ? format : Self.quoted(format))") }
            if let split = p.split { extras.append("split: \"\(split)\"") }
            line += extras.isEmpty ? column : "{ from: \(column), \(extras.joined(separator: ", ")) }"
            // A code column with the department's own values stays out until its map is written.
            let comment = "   # \(p.field.title)：\(Self.oneLine(p.evidence))"
            out.append(p.mapStub.isEmpty ? line + comment : "  # " + String(line.dropFirst(2)) + comment)
            if !p.mapStub.isEmpty {
                // The department's own codes: the operator says what each means.
                let entries = p.mapStub.map { "\(Self.quoted($0)): \(p.field.values.contains($0) ? $0 : "?")" }.joined(separator: ", ")
                out.append("  # TODO \(p.field.name) 的值不在代码表（\(p.field.values.joined(separator: "、"))）中，改成 { from: \(column), map: { \(entries) } } 并填上 ?")
            }
        }
        for f in missing {
            out.append("  # TODO \(f.name)（\(f.title)\(f.required ? "，必填" : "")）：样本里没有找到对应的列")
        }
        return out.joined(separator: "\n") + "\n"
    }

    public static func quoted(_ s: String) -> String {
        let plain = !s.isEmpty && s.allSatisfy { !":#{}[],&*!|>'\"%@`\\".contains($0) && !$0.isNewline && $0.asciiValue.map { $0 >= 0x20 } ?? true }
            && !s.hasPrefix(" ") && !s.hasPrefix("-") && !s.hasSuffix(" ")
        if plain { return s }
        var out = "\""
        for ch in s.unicodeScalars {
            switch ch {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default: out += ch.value < 0x20 ? String(format: "\\x%02X", ch.value) : String(ch)
            }
        }
        return out + "\""
    }

    /// Text for a YAML comment: one line.
    static func oneLine(_ s: String) -> String { s.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ") }
}
