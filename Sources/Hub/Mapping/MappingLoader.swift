import Foundation

/// Reads mapping files, checking each against the record types and the connector kinds.
/// Every mistake is reported with its line and column; nothing half-valid is returned.
public struct MappingLoader: Sendable {
    public var types: TypeCatalog
    public var connectors: ConnectorRegistry
    public var formats: FormatRegistry

    public init(types: TypeCatalog, connectors: ConnectorRegistry, formats: FormatRegistry = BuiltinFormats.registry) {
        self.types = types; self.connectors = connectors; self.formats = formats
    }

    /// Top-level keys besides the formats' own sections.
    static let topKeys = ["source", "title", "department", "description", "connector", "fetch", "format",
                          "schedule", "expect", "record", "key", "fields", "keep_if", "records", "unpivot"]
    static let outputKeys = ["record", "key", "fields", "keep_if", "unpivot"]
    static let fieldKeys = ["from", "as", "value", "expr", "combine", "separator", "required", "default", "format", "unit",
                            "negative", "map", "extract", "on_invalid", "split"]

    /// Loads a mapping file from disk.
    public func load(file url: URL) throws(DiagnosticList) -> Mapping {
        let path = url.relativePathForDisplay
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw DiagnosticList([Diagnostic(SourceLocation(file: path, line: 1, column: 1), "无法读取文件")])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw DiagnosticList([Diagnostic(SourceLocation(file: path, line: 1, column: 1), "映射文件须为 UTF-8 编码")])
        }
        return try load(text: text, file: path, directory: url.deletingLastPathComponent().path)
    }

    /// Loads a mapping from its text; `file` is used in messages, `directory` for relative paths.
    public func load(text: String, file: String, directory: String = ".") throws(DiagnosticList) -> Mapping {
        let root = try ConfigNode.parse(text, file: file)
        let r = ConfigReader()
        let top = r.mapping(root, what: "映射文件", allowed: Self.topKeys + formats.names)
        if root.isNull { r.error(root.location, "映射文件为空") }

        let source = r.requiredString(top, "source", in: root, what: "映射文件") ?? ""
        if !source.isEmpty && source.range(of: "^[a-z0-9][a-z0-9_-]*$", options: .regularExpression) == nil {
            r.error(top["source"]!.0.location, "source \"\(source)\" 只能用小写字母、数字、- 和 _")
        }
        let base = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
        if !source.isEmpty && base != source && !file.hasPrefix("<") {
            r.error(top["source"]!.0.location, "source \"\(source)\" 应与文件名 \(base).yaml 一致")
        }

        // Connector and its options.
        let connectorName = r.requiredString(top, "connector", in: root, what: "映射文件") ?? ""
        let options = top["fetch"]?.0 ?? ConfigNode(kind: .mapping([]), location: root.location)
        if !connectorName.isEmpty {
            if let kind = connectors.kinds[connectorName] {
                _ = kind.make(options, directory, r)
            } else {
                r.error(top["connector"]!.0.location, "未知的连接器 \"\(connectorName)\"\(Suggest.hint(connectorName, connectors.kinds.keys))（可用：\(connectors.kinds.keys.sorted().joined(separator: ", "))）")
            }
        }

        let format = readFormat(top, root: root, r: r)

        var expect: DeliveryExpectation? = nil
        if let (en, _) = top["expect"] {
            let m = r.mapping(en, what: "expect", allowed: ["due_day", "min_rows", "max_drop"])
            var x = DeliveryExpectation()
            x.dueDay = r.int(m["due_day"]?.0, what: "expect.due_day", range: 1...31)
            x.minRows = r.int(m["min_rows"]?.0, what: "expect.min_rows", range: 0...Int.max)
            if let n = m["max_drop"]?.0, let s = r.string(n, what: "expect.max_drop") {
                if let d = Double(s.replacingOccurrences(of: "%", with: "")) { x.maxDrop = s.hasSuffix("%") ? d / 100 : d }
                else { r.error(n.location, "expect.max_drop 应为比例，如 0.5 或 50%") }
            }
            expect = x
        }

        // Outputs: `record:` + `fields:` at the top, or a `records:` list.
        var outputs: [OutputSpec] = []
        if let (list, _) = top["records"] {
            if top["record"] != nil || top["fields"] != nil {
                r.error(list.location, "records 列表与顶层的 record/fields 只能二选一")
            }
            guard let items = list.items, !items.isEmpty else {
                r.error(list.location, "records 应为非空列表，每项含 record、key、fields")
                throw DiagnosticList(r.diagnostics)
            }
            for item in items {
                let m = r.mapping(item, what: "records 中的一项", allowed: Self.outputKeys)
                if let o = readOutput(m, node: item, r: r, format: format) { outputs.append(o) }
            }
        } else if top["record"] != nil {
            var m: [String: (ConfigNode, SourceLocation)] = [:]
            for k in Self.outputKeys { if let v = top[k] { m[k] = v } }
            if let o = readOutput(m, node: root, r: r, format: format) { outputs.append(o) }
        } else if !root.isNull {
            r.error(root.location, "映射文件缺少 record（产出的记录类型），或 records 列表")
        }

        if !r.diagnostics.isEmpty { throw DiagnosticList(r.diagnostics) }
        return Mapping(source: source, title: r.string(top["title"]?.0, what: "title") ?? source,
                       department: r.string(top["department"]?.0, what: "department") ?? "",
                       connector: connectorName, connectorOptions: options, format: format!,
                       schedule: r.string(top["schedule"]?.0, what: "schedule"), expect: expect,
                       outputs: outputs, file: file, version: Hashing.hex(text), directory: directory)
    }

    /// Builds the connector a loaded mapping names (its options were checked at load).
    public func connector(for mapping: Mapping) throws -> any Connector {
        let r = ConfigReader()
        guard let kind = connectors.kinds[mapping.connector], let c = kind.make(mapping.connectorOptions, mapping.directory, r) else {
            throw DiagnosticList(r.diagnostics)
        }
        return c
    }

    func readFormat(_ top: [String: (ConfigNode, SourceLocation)], root: ConfigNode, r: ConfigReader) -> FeedFormat? {
        let names = formats.names
        guard let name = r.oneOf(top["format"]?.0, what: "format", names), let kind = formats.kind(name) else {
            if top["format"] == nil { r.error(root.location, "映射文件缺少 format（\(names.joined(separator: "、"))）") }
            return nil
        }
        for other in names where top[other] != nil && name != other {
            r.error(top[other]!.1, "format 是 \(name)，却写了 \(other) 选项")
        }
        return kind.make(section: top[name]?.0, format: top["format"]!.0, reader: r).map(FeedFormat.init)
    }

    func readOutput(_ m: [String: (ConfigNode, SourceLocation)], node: ConfigNode, r: ConfigReader, format: FeedFormat?) -> OutputSpec? {
        guard let typeName = r.string(m["record"]?.0, what: "record") else {
            if m["record"] == nil { r.error(node.location, "缺少 record（产出的记录类型）") }
            return nil
        }
        guard let type = types[typeName] else {
            r.error(m["record"]!.0.location, "未知的记录类型 \"\(typeName)\"\(Suggest.hint(typeName, types.names))（已声明：\(types.names.joined(separator: ", "))；新类型写在 Mappings/types/ 下）")
            return nil
        }
        let fieldNames = type.fields.map(\.name)
        var key = type.key
        if let (kn, _) = m["key"] {
            key = r.strings(kn, what: "key") ?? []
            for k in key where !fieldNames.contains(k) {
                r.error(kn.location, "key 中的字段 \"\(k)\" 不是类型 \(type.name) 的字段\(Suggest.hint(k, fieldNames))")
            }
        }
        if key.isEmpty { r.error(m["key"]?.0.location ?? node.location, "须给出 key：哪些字段能唯一确定一条记录（重复拉取时据此更新而不重复）") }

        var specs = [FieldSpec?](repeating: nil, count: type.fields.count)
        if let (fn, _) = m["fields"] {
            guard let entries = fn.entries else {
                r.error(fn.location, "fields 应为映射（字段名: 来源列），实为 \(fn.kindName)")
                return nil
            }
            for e in entries {
                guard let idx = fieldNames.firstIndex(of: e.key) else {
                    r.error(e.keyLocation, "字段 \"\(e.key)\" 不是类型 \(type.name) 的字段\(Suggest.hint(e.key, fieldNames))（可用：\(fieldNames.joined(separator: ", "))）")
                    continue
                }
                specs[idx] = readField(type.fields[idx], e.value, keyLocation: e.keyLocation, r: r, inKey: key.contains(e.key))
            }
        } else {
            r.error(node.location, "缺少 fields：每个字段从哪一列来")
        }
        // Computed fields (`expr:`), checked against the other fields' types like keep_if.
        var fieldTypes: [String: ExprType] = [:]
        for f in type.fields { fieldTypes[f.name] = ExprType.of(f.type) }
        fieldTypes.merge(PeriodValues.variables) { field, _ in field }
        if let (fn, _) = m["fields"], let entries = fn.entries {
            for e in entries {
                guard let idx = fieldNames.firstIndex(of: e.key), var spec = specs[idx], let text = spec.expressionText,
                      let en = e.value["expr"] else { continue }
                do {
                    let ex = try ExpressionParser.parse(text)
                    let t = try ExpressionChecker.check(ex, in: FieldScope(fieldTypes))
                    let want = ExprType.of(type.fields[idx].type)
                    if t != want && t != .null { r.error(en.location, "字段 \(e.key) 的 expr 结果是\(t.chinese)，字段是\(want.chinese)") }
                    if ex.names.contains(e.key) { r.error(en.location, "字段 \(e.key) 的 expr 不能读它自己") }
                    // Computed fields read fields taken from the row, not other computed ones, nor
                    // the ones `split:`/`unpivot:` fill per record.
                    let derived = Set(specs.compactMap { $0 }.filter { ($0.expressionText != nil || $0.split != nil) && $0.name != e.key }.map(\.name))
                    if let other = ex.names.first(where: { derived.contains($0) }) {
                        r.error(en.location, "字段 \(e.key) 的 expr 不能读计算字段或 split 字段 \(other)")
                    }
                    if m["unpivot"] != nil { r.error(en.location, "用 unpivot 的产出暂不支持 expr 字段") }
                    spec.expression = ex
                    specs[idx] = spec
                } catch {
                    r.error(SourceLocation(file: en.location.file, line: en.location.line, column: en.location.column + error.offset + (en.quoted ? 1 : 0)), "字段 \(e.key) 的 expr：\(error.message)")
                }
            }
        }
        var unpivot: Unpivot? = nil
        if let (un, _) = m["unpivot"] {
            unpivot = readUnpivot(un, type: type, given: specs, r: r)
        }
        let splitting = specs.compactMap { $0 }.filter { $0.split != nil }
        if unpivot != nil, let s = splitting.first { r.error(s.location, "同一项产出不能既用 unpivot 又用 split") }
        if splitting.count > 1 {
            r.error(splitting[1].location, "一项产出只能有一个字段用 split（这里 \(splitting.map(\.name).joined(separator: "、")) 都用了）")
        }
        if let s = splitting.first, !key.contains(s.name) {
            r.error(s.location, "用 split 的字段 \(s.name) 须在 key 中，否则拆出的几条记录键相同（key：\(key.joined(separator: ", "))）")
        }
        let fromUnpivot = Set(([unpivot?.into.name] + (unpivot?.header.map(\.spec.name) ?? [])).compactMap { $0 })
        for (i, f) in type.fields.enumerated() where specs[i] == nil && (f.required || key.contains(f.name)) && !fromUnpivot.contains(f.name) {
            r.error(m["fields"]?.0.location ?? node.location, "类型 \(type.name) 的必填字段 \(f.name)（\(f.title)）未在 fields 中给出")
        }

        var keepIf: Expression? = nil
        var keepText: String? = nil
        if let (kn, _) = m["keep_if"], let text = r.string(kn, what: "keep_if") {
            keepText = text
            var scopeTypes: [String: ExprType] = [:]
            for f in type.fields { scopeTypes[f.name] = ExprType.of(f.type) }
            scopeTypes.merge(PeriodValues.variables) { field, _ in field }
            do {
                let e = try ExpressionParser.parse(text)
                let t = try ExpressionChecker.check(e, in: FieldScope(scopeTypes))
                if t != .bool { r.error(kn.location, "keep_if 应为条件（结果为真假），这里的结果是\(t.chinese)") }
                keepIf = e
            } catch {
                r.error(SourceLocation(file: kn.location.file, line: kn.location.line, column: kn.location.column + error.offset + (kn.quoted ? 1 : 0)), "keep_if：\(error.message)")
            }
        }
        return OutputSpec(type: type, key: key, fields: specs, keepIf: keepIf, keepIfText: keepText, unpivot: unpivot)
    }

    /// `unpivot: { columns: "^(\\d{4})年(\\d{1,2})月用电$", into: kwh, fields: { month: "{1}-{2}-01" } }`
    func readUnpivot(_ node: ConfigNode, type: RecordType, given: [FieldSpec?], r: ConfigReader) -> Unpivot? {
        let m = r.mapping(node, what: "unpivot", allowed: ["columns", "into", "fields"])
        guard let pattern = r.requiredString(m, "columns", in: node, what: "unpivot"),
              let into = r.requiredString(m, "into", in: node, what: "unpivot") else { return nil }
        guard let re = try? NSRegularExpression(pattern: pattern) else {
            r.error(m["columns"]!.0.location, "unpivot.columns 应为正则表达式，选出一列一列的表头，如 \"^(\\\\d{4})年(\\\\d{1,2})月用电$\""); return nil
        }
        func spec(_ name: String, at loc: SourceLocation) -> FieldSpec? {
            guard let i = type.fields.firstIndex(where: { $0.name == name }) else {
                r.error(loc, "\"\(name)\" 不是类型 \(type.name) 的字段\(Suggest.hint(name, type.fields.map(\.name)))"); return nil
            }
            if given[i] != nil { r.error(loc, "字段 \(name) 由 unpivot 填写，不要再写在 fields 中") }
            let f = type.fields[i]
            return FieldSpec(name: f.name, type: f.type, from: [], constant: nil, required: f.required, defaultValue: nil, allowedValues: f.values, location: loc)
        }
        guard let intoSpec = spec(into, at: m["into"]!.0.location) else { return nil }
        var header: [(FieldSpec, String)] = []
        if let (hn, _) = m["fields"] {
            for e in hn.entries ?? [] {
                guard let t = r.string(e.value, what: "unpivot.fields.\(e.key)"), let s = spec(e.key, at: e.keyLocation) else { continue }
                let groups = t.matches(of: /\{(\d+)\}/).compactMap { Int($0.1) }
                if let g = groups.first(where: { $0 > re.numberOfCaptureGroups }) {
                    r.error(e.value.location, "unpivot.fields.\(e.key) 用了 {\(g)}，但 columns 只有 \(re.numberOfCaptureGroups) 个括号分组")
                }
                header.append((s, t))
            }
        }
        return Unpivot(columns: NSRegularExpressionBox(re, pattern), into: intoSpec, header: header)
    }

    /// Period placeholders (`{period}` …) must be ones the hub knows.
    func checkPlaceholders(_ text: String?, at node: ConfigNode?, what: String, _ r: ConfigReader, location: SourceLocation? = nil) {
        guard let text, let node else { return }
        for name in PeriodValues.unknown(in: text) {
            r.error(location ?? node.location, "\(what) 中的 {\(name)} 不是期间变量\(Suggest.hint(name, PeriodValues.names))（可用：\(PeriodValues.names.map { "{\($0)}" }.joined(separator: "、"))）")
        }
    }

    func readField(_ decl: RecordType.Field, _ node: ConfigNode, keyLocation: SourceLocation, r: ConfigReader, inKey: Bool) -> FieldSpec? {
        var spec = FieldSpec(name: decl.name, type: decl.type, from: [], constant: nil, required: decl.required || inKey,
                             defaultValue: nil, allowedValues: decl.values, location: keyLocation)
        let what = "字段 \(decl.name)"
        if let s = node.string {
            spec.from = [s]
        } else if node.items != nil {
            spec.from = r.strings(node, what: "\(what) 的来源列") ?? []
        } else {
            let m = r.mapping(node, what: what, allowed: Self.fieldKeys)
            if node.isNull { r.error(node.location, "\(what) 须写明来源列，如 \(decl.name): 列名") ; return nil }
            spec.from = r.strings(m["from"]?.0, what: "\(what).from") ?? []
            spec.constant = r.string(m["value"]?.0, what: "\(what).value")
            checkPlaceholders(spec.constant, at: m["value"]?.0, what: "\(what).value", r)
            spec.expressionText = r.string(m["expr"]?.0, what: "\(what).expr")
            if spec.from.isEmpty && spec.constant == nil && spec.expressionText == nil {
                r.error(node.location, "\(what) 须有 from（来源列）、value（固定值）或 expr（由其他字段算出）")
            }
            if spec.expressionText != nil && (!spec.from.isEmpty || spec.constant != nil) {
                r.error(m["expr"]!.1, "\(what) 的 expr 不能与 from 或 value 同用")
            }
            if !spec.from.isEmpty && spec.constant != nil {
                r.error(m["value"]!.1, "\(what) 的 from 与 value 只能二选一")
            }
            if let a = r.string(m["as"]?.0, what: "\(what).as") {
                if FieldType(rawValue: a) == nil {
                    r.error(m["as"]!.0.location, "\(what).as 的类型 \"\(a)\" 未知\(Suggest.hint(a, FieldType.allCases.map(\.rawValue)))")
                } else if a != decl.type.rawValue {
                    r.error(m["as"]!.0.location, "\(what) 在类型文件中声明为 \(decl.type.rawValue)，这里写了 as: \(a)；删去 as 或改为 \(decl.type.rawValue)")
                }
            }
            if let c = r.oneOf(m["combine"]?.0, what: "\(what).combine", FieldSpec.Combine.allCases.map(\.rawValue)) {
                spec.combine = FieldSpec.Combine(rawValue: c)!
                if spec.combine == .sum && ![.money, .integer, .decimal].contains(decl.type) {
                    r.error(m["combine"]!.0.location, "combine: sum 只能用于数值字段，\(decl.name) 是 \(decl.type.rawValue)")
                }
            }
            spec.separator = r.string(m["separator"]?.0, what: "\(what).separator") ?? ""
            if let req = r.bool(m["required"]?.0, what: "\(what).required") {
                if !req && (decl.required || inKey) { r.error(m["required"]!.0.location, "\(what) 是必填字段（类型声明或 key 要求），不能设为 required: false") }
                spec.required = req || decl.required || inKey
            }
            spec.defaultValue = r.string(m["default"]?.0, what: "\(what).default")
            checkPlaceholders(spec.defaultValue, at: m["default"]?.0, what: "\(what).default", r)
            if let fnode = m["format"]?.0 {
                guard decl.type == .date || decl.type == .datetime else {
                    r.error(fnode.location, "只有 date/datetime 字段需要 format，\(decl.name) 是 \(decl.type.rawValue)")
                    return spec
                }
                for f in r.strings(fnode, what: "\(what).format") ?? [] {
                    do { spec.formats.append(try DateFormat(f)) }
                    catch let e as DateFormat.Invalid { r.error(fnode.location, "日期格式 \"\(f)\" 无效：\(e.reason)") }
                    catch {}
                }
            }
            if let u = m["unit"]?.0 {
                guard decl.type == .money else {
                    r.error(u.location, "只有 money 字段可以设 unit，\(decl.name) 是 \(decl.type.rawValue)")
                    return spec
                }
                switch r.oneOf(u, what: "\(what).unit", ["元", "万元", "角", "分"]) {
                case "万元": spec.moneyScale = 10000
                case "分": spec.moneyScale = -100
                case "角": spec.moneyScale = -10
                default: break
                }
            }
            if let n = m["negative"]?.0 {
                spec.allowNegative = r.oneOf(n, what: "\(what).negative", ["allow", "reject"]) == "allow"
            }
            if let mn = m["map"]?.0 {
                if let entries = mn.entries {
                    var map: [String: String] = [:], raw: [String: String] = [:]
                    for e in entries {
                        let v = r.string(e.value, what: "\(what).map[\(e.key)]") ?? ""
                        checkPlaceholders(e.key, at: e.value, what: "\(what).map 的键", r, location: e.keyLocation)
                        checkPlaceholders(v, at: e.value, what: "\(what).map[\(e.key)]", r)
                        raw[e.key] = v
                        if !decl.values.isEmpty && !decl.values.contains(v) && !PeriodValues.mentioned(in: v) {
                            r.error(e.value.location, "代码 \"\(v)\" 不是字段 \(decl.name) 的允许取值\(Suggest.hint(v, decl.values))（取值：\(decl.values.joined(separator: ", "))）")
                        }
                        map[Suggest.normalize(e.key)] = v
                    }
                    spec.codeMap = map
                    spec.rawCodeMap = raw
                } else {
                    r.error(mn.location, "\(what).map 应为映射（来源值: 标准值），实为 \(mn.kindName)")
                }
            }
            if let en = m["extract"]?.0, let p = r.string(en, what: "\(what).extract") {
                checkPlaceholders(p, at: en, what: "\(what).extract", r)
                // Checked with a month filled in; each pull compiles it for its own month.
                if let re = try? NSRegularExpression(pattern: PeriodValues.substitute(p, Period(year: 2026, month: 10)!)), re.numberOfCaptureGroups >= 1 {
                    spec.extract = NSRegularExpressionBox(re, p)
                } else {
                    r.error(en.location, "\(what).extract 应为含一个括号分组的正则表达式，如 \"证号[:：](\\\\d+)\"")
                }
            }
            if let sn = m["split"]?.0, let sep = r.string(sn, what: "\(what).split") {
                if sep.isEmpty { r.error(sn.location, "\(what).split 不能为空，如 split: \"、\"") }
                else { spec.split = sep }
            }
            if let o = r.oneOf(m["on_invalid"]?.0, what: "\(what).on_invalid", FieldSpec.OnInvalid.allCases.map(\.rawValue)) {
                spec.onInvalid = FieldSpec.OnInvalid(rawValue: o)!
                if spec.onInvalid == .empty && spec.required {
                    r.error(m["on_invalid"]!.0.location, "必填字段 \(decl.name) 不能设 on_invalid: empty")
                }
            }
        }
        // Checked with a month filled in, as a pull would read it.
        if let d = spec.defaultValue ?? spec.constant {
            let sample = spec.resolved(for: Period(year: 2026, month: 10)!)
            if case .failure(let why) = FieldParser.parse(PeriodValues.substitute(d, Period(year: 2026, month: 10)!), sample, fromSource: false) {
                r.error(spec.location, "\(what) 的 default/value \"\(d)\" 本身无效：\(why)")
            }
        }
        return spec
    }
}
