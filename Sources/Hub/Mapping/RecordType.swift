import Foundation

/// A canonical record type, declared in `Mappings/types/NAME.yaml`, never compiled in.
///
/// ```yaml
/// type: medical_claim
/// title: 医保结算记录
/// subject: person          # person | household | village | none: what the record is about
/// link: id_number          # the field that names the subject
/// key: [settlement_id]     # default key for mappings that produce this type
/// fields:
///   settlement_id: { type: text, required: true, title: 结算ID }
///   id_number: { type: resident_id, required: true, title: 身份证号 }
///   self_pay: { type: money, title: 个人自付 }
///   med_type: { type: code, values: [住院, 门诊, 门诊慢特病] }
/// ```
/// The store gives each type its own table `rec_NAME`, created and extended from this file.
public struct RecordType: Sendable, Hashable {
    public struct Field: Sendable, Hashable {
        public var name: String
        public var type: FieldType
        public var title: String
        public var required: Bool
        /// Allowed canonical values for `code` fields (empty: any).
        public var values: [String]
        /// Other column titles departments use for this field (`hubd mapping init` matches them).
        public var synonyms: [String] = []
    }

    public enum Subject: String, Sendable, CaseIterable { case person, household, village, none }

    public var name: String
    public var title: String
    public var subject: Subject
    public var link: String?
    public var key: [String]
    public var fields: [Field]
    public var file: String
    /// Months a month's records are kept after it (`retention: 24 months`); nil: kept until
    /// deleted by hand. `hubd retention apply` and the service delete what is older.
    public var retentionMonths: Int? = nil

    public func field(_ name: String) -> Field? { fields.first(where: { $0.name == name }) }

    /// The store's table for this type.
    public var tableName: String { "rec_" + name }

    /// Field names are column names: PostgreSQL keeps 63 bytes of an identifier.
    static let namePattern = try! NSRegularExpression(pattern: "^[a-z][a-z0-9_]{0,62}$")
    static func isIdentifier(_ s: String) -> Bool {
        namePattern.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
    }
    /// Type names become table and index names (`rec_NAME_household`): at most 40 characters,
    /// so that no store cuts two names to the same identifier.
    public static let maxNameLength = 40

    /// Reads one declaration file.
    public static func load(text: String, file: String) throws(DiagnosticList) -> RecordType {
        let root = try ConfigNode.parse(text, file: file)
        let r = ConfigReader()
        let top = r.mapping(root, what: "记录类型", allowed: ["type", "title", "subject", "link", "key", "fields", "description", "retention"])
        let name = r.requiredString(top, "type", in: root, what: "记录类型") ?? ""
        if !name.isEmpty && !isIdentifier(name) {
            r.error(top["type"]!.0.location, "类型名 \"\(name)\" 只能用小写字母、数字和下划线，并以字母开头")
        } else if name.count > maxNameLength {
            r.error(top["type"]!.0.location, "类型名 \"\(name)\" 有 \(name.count) 个字符，最多 \(maxNameLength) 个（它是数据库的表名）")
        }
        let subject = r.oneOf(top["subject"]?.0, what: "subject", Subject.allCases.map(\.rawValue)).flatMap(Subject.init) ?? .none
        var fields: [Field] = []
        if let (fnode, _) = top["fields"] {
            if let entries = fnode.entries {
                for e in entries {
                    if !isIdentifier(e.key) { r.error(e.keyLocation, "字段名 \"\(e.key)\" 只能用小写字母、数字和下划线，并以字母开头") }
                    if e.key.hasPrefix("_") { r.error(e.keyLocation, "以 _ 开头的字段名留给系统使用") }
                    var f = Field(name: e.key, type: .text, title: e.key, required: false, values: [])
                    if let s = e.value.string {
                        if let t = FieldType(rawValue: s) { f.type = t } else {
                            r.error(e.value.location, "字段 \(e.key) 的类型 \"\(s)\" 未知\(Suggest.hint(s, FieldType.allCases.map(\.rawValue)))")
                        }
                    } else {
                        let m = r.mapping(e.value, what: "字段 \(e.key)", allowed: ["type", "title", "required", "values", "description", "synonyms"])
                        if let t = r.oneOf(m["type"]?.0, what: "字段 \(e.key) 的 type", FieldType.allCases.map(\.rawValue)) { f.type = FieldType(rawValue: t)! }
                        else if m["type"] == nil { r.error(e.value.location, "字段 \(e.key) 缺少 type") }
                        f.title = r.string(m["title"]?.0, what: "title") ?? e.key
                        f.required = r.bool(m["required"]?.0, what: "required") ?? false
                        f.values = r.strings(m["values"]?.0, what: "values") ?? []
                        f.synonyms = r.strings(m["synonyms"]?.0, what: "synonyms") ?? []
                        if !f.values.isEmpty && f.type != .code { r.error(m["values"]!.1, "只有 code 类型的字段可以列出 values") }
                    }
                    fields.append(f)
                }
            } else {
                r.error(fnode.location, "fields 应为映射（字段名: 类型），实为 \(fnode.kindName)")
            }
        } else {
            r.error(root.location, "记录类型缺少 fields")
        }
        let names = fields.map(\.name)
        var key: [String] = []
        if let (knode, _) = top["key"] {
            key = r.strings(knode, what: "key") ?? []
            for k in key where !names.contains(k) {
                r.error(knode.location, "key 中的字段 \"\(k)\" 未在 fields 中声明\(Suggest.hint(k, names))")
            }
        }
        // Key fields are always required.
        for i in fields.indices where key.contains(fields[i].name) { fields[i].required = true }
        let link = r.string(top["link"]?.0, what: "link")
        if let link, !names.contains(link) {
            r.error(top["link"]!.0.location, "link 字段 \"\(link)\" 未在 fields 中声明\(Suggest.hint(link, names))")
        }
        if subject != .none && link == nil {
            r.error(root.location, "subject 为 \(subject.rawValue) 时须用 link 指明关联字段")
        }
        var retention: Int? = nil
        if let (rnode, _) = top["retention"] {
            // "24 months", "24 个月", or a bare number of months.
            let text = (rnode.string ?? "").trimmingCharacters(in: .whitespaces)
            let digits = text.prefix { $0.isASCII && $0.isNumber }
            let unit = text.dropFirst(digits.count).trimmingCharacters(in: .whitespaces)
            if let n = Int(digits), n > 0, n <= 1200, ["", "months", "month", "个月", "月"].contains(unit) { retention = n }
            else { r.error(rnode.location, "retention 应写作月数，如 \"24 months\" 或 \"24 个月\"，实为 \"\(text)\"") }
        }
        if !r.diagnostics.isEmpty { throw DiagnosticList(r.diagnostics) }
        var t = RecordType(name: name, title: r.string(top["title"]?.0, what: "title") ?? name, subject: subject,
                           link: link, key: key, fields: fields, file: file)
        t.retentionMonths = retention
        return t
    }
}

/// The record types an installation knows: the shipped ones and any an operator added.
public struct TypeCatalog: Sendable {
    public private(set) var types: [String: RecordType] = [:]

    public init(_ types: [RecordType] = []) {
        for t in types { self.types[t.name] = t }
    }

    public subscript(name: String) -> RecordType? { types[name] }
    public var names: [String] { types.keys.sorted() }

    /// Loads every `*.yaml` in a folder; all mistakes in all files are reported together.
    public static func load(directory: URL) throws(DiagnosticList) -> TypeCatalog {
        var catalog = TypeCatalog()
        var problems: [Diagnostic] = []
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for f in files.sorted() where f.hasSuffix(".yaml") || f.hasSuffix(".yml") {
            let url = directory.appendingPathComponent(f)
            let path = url.relativePathForDisplay
            guard let text = try? String(contentsOf: url, encoding: .utf8) else {
                problems.append(Diagnostic(SourceLocation(file: path, line: 1, column: 1), "无法以 UTF-8 读取该文件"))
                continue
            }
            do {
                let t = try RecordType.load(text: text, file: path)
                if let other = catalog.types[t.name] {
                    problems.append(Diagnostic(SourceLocation(file: path, line: 1, column: 1), "类型 \(t.name) 已在 \(other.file) 中声明"))
                }
                catalog.types[t.name] = t
            } catch {
                problems += error.items
            }
        }
        if !problems.isEmpty { throw DiagnosticList(problems) }
        return catalog
    }
}

extension URL {
    /// The path relative to the working directory when it lies below it, for short messages.
    public var relativePathForDisplay: String {
        let cwd = FileManager.default.currentDirectoryPath
        let p = standardizedFileURL.path
        if p.hasPrefix(cwd + "/") { return String(p.dropFirst(cwd.count + 1)) }
        return p
    }
}
