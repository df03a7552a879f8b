import Foundation

/// An early-warning rule, declared in `Mappings/rules/NAME.yaml`.
///
/// ```yaml
/// rule: medical_burden
/// title: 医疗负担致家庭人均纯收入低于监测标准
/// severity: high
/// subject: household            # household | person | village | group
/// uses:
///   claims: { type: medical_claim, window: 12 months, date: settled_at }
/// when: "(household.income_per_person * household.size - sum(claims.self_pay)) / household.size < income_threshold"
/// message: "…{sum(claims.self_pay)}…"
/// ```
public struct Rule: Sendable {
    public enum Subject: String, Sendable, CaseIterable { case household, person, village, group }
    public enum Severity: String, Sendable, CaseIterable { case high, medium, low
        public var chinese: String { self == .high ? "高" : self == .medium ? "中" : "低" }
    }

    /// A named set of records the rule looks at, related to the subject through the type's link.
    public struct Use: Sendable {
        public var name: String
        public var type: RecordType
        /// Months back from the period's end (1: the period itself); nil: all records.
        public var windowMonths: Int?
        /// `year`: from 1 January of the period's year.
        public var yearToDate = false
        /// The date field that places a record in the window and orders it for `latest`.
        public var dateField: String?
        /// For events with a start (`date`) and an end: the end field. An event counts in the
        /// window when it overlaps it; one that has not ended (the end empty) is still going on.
        public var untilField: String?
        public var filter: Expression?
        /// Values computed per record, usable like fields: `days: "days_between(started_at, ended_at)"`.
        public var computed: [(name: String, expression: Expression, type: ExprType)] = []
    }

    public var name: String
    public var title: String
    public var severity: Severity
    public var subject: Subject
    /// For person, village and group subjects: the field of the trigger set naming the subject.
    public var by: String?
    /// The set whose records bring subjects in (person, village and group subjects).
    public var trigger: String?
    public var uses: [Use]
    public var when: Expression
    public var suppressIf: Expression?
    public var message: [MessagePart]
    public var file: String
    public var version: String

    public enum MessagePart: Sendable {
        case text(String)
        case expression(Expression)
    }
}

/// Policy values the rules use, by name; a value may change by year (the monitoring income
/// threshold does). Declared in `Mappings/rules/params.yaml`.
public struct RuleParams: Sendable {
    public var province: String = ""
    /// name → [(from year, value)], sorted.
    public var values: [String: [(year: Int, value: Double)]] = [:]
    public var titles: [String: String] = [:]

    public func value(_ name: String, year: Int) -> Double? {
        guard let list = values[name] else { return nil }
        return list.last(where: { $0.year <= year })?.value ?? list.first?.value
    }

    public static func load(text: String, file: String) throws(DiagnosticList) -> RuleParams {
        let root = try ConfigNode.parse(text, file: file)
        let r = ConfigReader()
        let top = r.mapping(root, what: "参数文件", allowed: ["province", "params"])
        var p = RuleParams()
        p.province = r.string(top["province"]?.0, what: "province") ?? ""
        if let (pn, _) = top["params"] {
            for e in pn.entries ?? [] {
                if let s = e.value.string {
                    guard let v = Double(s) else { r.error(e.value.location, "参数 \(e.key) 应为数值，实为 \"\(s)\""); continue }
                    p.values[e.key] = [(0, v)]
                    continue
                }
                let m = r.mapping(e.value, what: "参数 \(e.key)")
                p.titles[e.key] = r.string(m["title"]?.0, what: "title")
                if let (vn, _) = m["value"], let s = r.string(vn, what: "value"), let v = Double(s) { p.values[e.key] = [(0, v)] }
                if let (byYear, _) = m["by_year"] {
                    var list: [(Int, Double)] = []
                    for y in byYear.entries ?? [] {
                        guard let year = Int(y.key), let s = y.value.string, let v = Double(s) else {
                            r.error(y.keyLocation, "by_year 应写作 年份: 数值，如 2026: 7000"); continue
                        }
                        list.append((year, v))
                    }
                    p.values[e.key] = list.sorted { $0.0 < $1.0 }
                }
                if p.values[e.key] == nil { r.error(e.keyLocation, "参数 \(e.key) 须有 value 或 by_year") }
            }
        }
        if !r.diagnostics.isEmpty { throw DiagnosticList(r.diagnostics) }
        return p
    }
}

/// Reads rule files, checking every expression against the record types and parameters.
public struct RuleLoader: Sendable {
    public var types: TypeCatalog
    public var params: RuleParams

    public init(types: TypeCatalog, params: RuleParams) { self.types = types; self.params = params }

    static let keys = ["rule", "title", "description", "severity", "subject", "by", "trigger", "uses", "when", "suppress_if", "message", "source"]

    /// Loads every rule in a folder; a broken file is reported and skipped, the others load.
    public static func loadDirectory(_ dir: URL, types: TypeCatalog) -> (rules: [Rule], params: RuleParams, problems: [Diagnostic]) {
        var problems: [Diagnostic] = []
        var params = RuleParams()
        let paramsURL = dir.appendingPathComponent("params.yaml")
        if let text = try? String(contentsOf: paramsURL, encoding: .utf8) {
            do { params = try RuleParams.load(text: text, file: paramsURL.relativePathForDisplay) } catch { problems += error.items }
        }
        let loader = RuleLoader(types: types, params: params)
        var rules: [Rule] = []
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".yaml") && $0 != "params.yaml" }.sorted()
        for f in files {
            let url = dir.appendingPathComponent(f)
            guard let text = try? String(contentsOf: url, encoding: .utf8) else {
                problems.append(Diagnostic(SourceLocation(file: url.relativePathForDisplay, line: 1, column: 1), "无法以 UTF-8 读取"))
                continue
            }
            do { rules.append(try loader.load(text: text, file: url.relativePathForDisplay)) } catch { problems += error.items }
        }
        return (rules, params, problems)
    }

    public func load(text: String, file: String) throws(DiagnosticList) -> Rule {
        let root = try ConfigNode.parse(text, file: file)
        let r = ConfigReader()
        let top = r.mapping(root, what: "规则文件", allowed: Self.keys)
        let name = r.requiredString(top, "rule", in: root, what: "规则文件") ?? ""
        let subject = r.oneOf(top["subject"]?.0, what: "subject", Rule.Subject.allCases.map(\.rawValue)).flatMap(Rule.Subject.init)
        if top["subject"] == nil { r.error(root.location, "规则须给出 subject：household、person、village 或 group") }
        let severity = r.oneOf(top["severity"]?.0, what: "severity", Rule.Severity.allCases.map(\.rawValue)).flatMap(Rule.Severity.init) ?? .medium
        var uses: [Rule.Use] = []
        if let (un, _) = top["uses"] {
            for e in un.entries ?? [] {
                let m = r.mapping(e.value, what: "uses.\(e.key)", allowed: ["type", "window", "date", "until", "where", "compute"])
                guard let tn = r.requiredString(m, "type", in: e.value, what: "uses.\(e.key)") else { continue }
                guard let t = types[tn] else {
                    r.error(m["type"]!.0.location, "未知的记录类型 \"\(tn)\"\(Suggest.hint(tn, types.names))"); continue
                }
                var use = Rule.Use(name: e.key, type: t)
                if let (wn, _) = m["window"], let w = r.string(wn, what: "window") {
                    if w == "period" { use.windowMonths = 1 }
                    else if w == "year" { use.yearToDate = true }
                    else if let n = Int(w.replacingOccurrences(of: "months", with: "").replacingOccurrences(of: "month", with: "").trimmingCharacters(in: .whitespaces)), n > 0 { use.windowMonths = n }
                    else { r.error(wn.location, "window 应为 period、year 或 “N months”，实为 \"\(w)\"") }
                }
                if let (dn, _) = m["date"], let d = r.string(dn, what: "date") {
                    if let f = t.field(d), f.type == .date || f.type == .datetime { use.dateField = d }
                    else { r.error(dn.location, "date 应为类型 \(t.name) 的日期字段\(Suggest.hint(d, t.fields.filter { $0.type == .date || $0.type == .datetime }.map(\.name)))") }
                }
                if let (un, _) = m["until"], let u = r.string(un, what: "until") {
                    if let f = t.field(u), f.type == .date || f.type == .datetime { use.untilField = u }
                    else { r.error(un.location, "until 应为类型 \(t.name) 的日期字段（事件结束）\(Suggest.hint(u, t.fields.filter { $0.type == .date || $0.type == .datetime }.map(\.name)))") }
                    if m["date"] == nil { r.error(un.location, "until 须与 date（事件开始）同用") }
                }
                if (use.windowMonths != nil || use.yearToDate) && use.dateField == nil {
                    r.error(e.value.location, "uses.\(e.key) 有 window，须用 date 指明按哪个日期字段划分")
                }
                if let (fn, _) = m["where"], let text = r.string(fn, what: "where") {
                    use.filter = checked(text, fn, r, scope: fieldScope(t), expect: .bool, what: "where")
                }
                if let (cn, _) = m["compute"] {
                    for c in cn.entries ?? [] {
                        guard let text = r.string(c.value, what: "compute.\(c.key)") else { continue }
                        if t.field(c.key) != nil { r.error(c.keyLocation, "compute 的名字 \(c.key) 与类型 \(t.name) 的字段重名") }
                        do {
                            let ex = try ExpressionParser.parse(text)
                            let ty = try ExpressionChecker.check(ex, in: fieldScope(t))
                            use.computed.append((c.key, ex, ty))
                        } catch {
                            r.error(SourceLocation(file: c.value.location.file, line: c.value.location.line, column: c.value.location.column + error.offset + (c.value.quoted ? 1 : 0)), "compute.\(c.key)：\(error.message)")
                        }
                    }
                }
                uses.append(use)
            }
        }
        let by = r.string(top["by"]?.0, what: "by")
        var trigger = r.string(top["trigger"]?.0, what: "trigger")
        if let s = subject, s != .household {
            if trigger == nil { trigger = uses.first?.name }
            guard let tr = trigger, let tu = uses.first(where: { $0.name == tr }) else {
                r.error(top["trigger"]?.0.location ?? root.location, "subject 为 \(s.rawValue) 时须有 trigger（哪个记录集带来对象）")
                throw DiagnosticList(r.diagnostics)
            }
            if by == nil { r.error(root.location, "subject 为 \(s.rawValue) 时须用 by 指明 \(tr) 中哪个字段是对象") }
            else if tu.type.field(by!) == nil { r.error(top["by"]!.0.location, "by 字段 \"\(by!)\" 不是类型 \(tu.type.name) 的字段\(Suggest.hint(by!, tu.type.fields.map(\.name)))") }
        }
        let scope = RuleScope(subject: subject ?? .household, types: types, uses: uses, params: params)
        var when: Expression? = nil
        if let (wn, _) = top["when"], let text = r.string(wn, what: "when") {
            when = checked(text, wn, r, scope: scope, expect: .bool, what: "when")
        } else { r.error(root.location, "规则须有 when：触发预警的条件") }
        var suppress: Expression? = nil
        if let (sn, _) = top["suppress_if"], let text = r.string(sn, what: "suppress_if") {
            suppress = checked(text, sn, r, scope: scope, expect: .bool, what: "suppress_if")
        }
        var message: [Rule.MessagePart] = []
        if let (mn, _) = top["message"], let text = r.string(mn, what: "message") {
            message = parseMessage(text, mn, r, scope: scope)
        } else { r.error(root.location, "规则须有 message：给乡镇看的预警说明") }
        if !r.diagnostics.isEmpty { throw DiagnosticList(r.diagnostics) }
        return Rule(name: name, title: r.string(top["title"]?.0, what: "title") ?? name, severity: severity, subject: subject!, by: by,
                    trigger: trigger, uses: uses, when: when!, suppressIf: suppress, message: message, file: file, version: Hashing.hex(text))
    }

    func fieldScope(_ t: RecordType) -> FieldScope {
        var m: [String: ExprType] = PeriodValues.variables
        for f in t.fields { m[f.name] = ExprType.of(f.type) }
        for (k, _) in params.values { m[k] = .number }
        return FieldScope(m)
    }

    func checked(_ text: String, _ node: ConfigNode, _ r: ConfigReader, scope: some ExpressionScope, expect: ExprType, what: String) -> Expression? {
        do {
            let e = try ExpressionParser.parse(text)
            let t = try ExpressionChecker.check(e, in: scope)
            if t != expect && t != .null { r.error(node.location, "\(what) 应为条件（真假值），这里的结果是\(t.chinese)") }
            return e
        } catch {
            r.error(SourceLocation(file: node.location.file, line: node.location.line, column: node.location.column + error.offset + (node.quoted ? 1 : 0)), "\(what)：\(error.message)")
            return nil
        }
    }

    /// `家庭成员自付 {sum(claims.self_pay)} 元` → text and expressions.
    func parseMessage(_ text: String, _ node: ConfigNode, _ r: ConfigReader, scope: RuleScope) -> [Rule.MessagePart] {
        var parts: [Rule.MessagePart] = []
        var rest = Substring(text)
        var consumed = 0
        while let open = rest.firstIndex(of: "{") {
            parts.append(.text(String(rest[..<open])))
            guard let close = rest[open...].firstIndex(of: "}") else {
                r.error(node.location, "message 中的 { 没有对应的 }"); break
            }
            let inner = String(rest[rest.index(after: open)..<close])
            let offset = consumed + rest.distance(from: rest.startIndex, to: open) + 1
            do {
                let e = try ExpressionParser.parse(inner)
                try ExpressionChecker.check(e, in: scope)
                parts.append(.expression(e))
            } catch {
                r.error(SourceLocation(file: node.location.file, line: node.location.line, column: node.location.column + offset + error.offset + (node.quoted ? 1 : 0)), "message：\(error.message)")
            }
            consumed += rest.distance(from: rest.startIndex, to: close) + 1
            rest = rest[rest.index(after: close)...]
        }
        parts.append(.text(String(rest)))
        return parts
    }
}

/// What a rule's expressions may name: the subject's fields (`household.income_per_person`),
/// the parameters (`income_threshold`), `period_start`/`period_end`, and its record sets
/// inside aggregates (`sum(claims.self_pay)`).
public struct RuleScope: ExpressionScope {
    var vars: [String: ExprType] = PeriodValues.variables
    var sets: [String: RecordType] = [:]
    var computed: [String: [String: ExprType]] = [:]

    init(subject: Rule.Subject, types: TypeCatalog, uses: [Rule.Use], params: RuleParams) {
        func add(_ prefix: String, _ t: RecordType?) {
            guard let t else { return }
            for f in t.fields { vars[prefix + "." + f.name] = ExprType.of(f.type) }
        }
        switch subject {
        case .household:
            add("household", types["household"])
            vars["household.members"] = .number
        case .person:
            add("person", types["person"])
            add("household", types["household"])
            vars["person.id"] = .text
            vars["in_roster"] = .bool
        case .village:
            vars["village.code"] = .text
            vars["village.roster_households"] = .number
        case .group:
            vars["group.key"] = .text
        }
        for (k, _) in params.values { vars[k] = .number }
        for u in uses {
            sets[u.name] = u.type
            computed[u.name] = Dictionary(u.computed.map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a })
        }
        if subject == .household || subject == .person, let p = types["person"] { sets["members"] = p }
    }

    public func type(of name: String) -> ExprType? { vars[name] }
    public var names: [String] { vars.keys.sorted() }
    public var setNames: [String] { sets.keys.sorted() }
    public func setFieldNames(_ set: String) -> [String] {
        (sets[set]?.fields.map(\.name) ?? []) + (computed[set]?.keys.sorted() ?? [])
    }
    public func aggregateType(_ argument: String) -> ExprType? {
        let parts = argument.split(separator: ".", maxSplits: 1).map(String.init)
        guard let t = sets[parts[0]] else { return nil }
        if parts.count == 1 { return .number }
        return t.field(parts[1]).map { ExprType.of($0.type) } ?? computed[parts[0]]?[parts[1]]
    }
}
