import Foundation

/// One record behind an alert, as the township sees it beside the alert.
public struct Evidence: Sendable, Codable, Hashable {
    public var type: String
    public var source: String
    public var run: Int64
    public var row: Int
    public var fields: [String: String]

    /// The stored JSON form of a list of evidence: what `JSONEncoder` with sorted keys and
    /// unescaped slashes writes, byte for byte, written directly (a province's month stores
    /// hundreds of thousands of alerts, and the generic encoder was a seventh of the time).
    public static func json(_ list: [Evidence]) -> String {
        var out = [UInt8]()
        out.reserveCapacity(256 * max(list.count, 1))
        out.append(0x5B)
        for (i, e) in list.enumerated() {
            if i > 0 { out.append(0x2C) }
            out.append(contentsOf: Array(#"{"fields":{"#.utf8))
            for (k, key) in e.fields.keys.sorted().enumerated() {
                if k > 0 { out.append(0x2C) }
                appendString(key, &out); out.append(0x3A); appendString(e.fields[key]!, &out)
            }
            out.append(contentsOf: Array(#"},"row":"#.utf8)); out.append(contentsOf: Array(String(e.row).utf8))
            out.append(contentsOf: Array(#","run":"#.utf8)); out.append(contentsOf: Array(String(e.run).utf8))
            out.append(contentsOf: Array(#","source":"#.utf8)); appendString(e.source, &out)
            out.append(contentsOf: Array(#","type":"#.utf8)); appendString(e.type, &out)
            out.append(0x7D)
        }
        out.append(0x5D)
        return String(decoding: out, as: UTF8.self)
    }

    static func appendString(_ s: String, _ out: inout [UInt8]) {
        out.append(0x22)
        for b in s.utf8 {
            switch b {
            case 0x22: out.append(0x5C); out.append(0x22)
            case 0x5C: out.append(0x5C); out.append(0x5C)
            case 0x0A: out.append(0x5C); out.append(0x6E)
            case 0x0D: out.append(0x5C); out.append(0x72)
            case 0x09: out.append(0x5C); out.append(0x74)
            case 0x08: out.append(0x5C); out.append(0x62)
            case 0x0C: out.append(0x5C); out.append(0x66)
            case 0x00..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 0xF)]])
            default: out.append(b)
            }
        }
        out.append(0x22)
    }
}

/// An early warning about one subject in one period.
public struct Alert: Sendable, Hashable {
    public var rule: String
    public var title: String
    public var severity: Rule.Severity
    public var subjectKind: Rule.Subject
    /// Household id, resident ID, village code or group key.
    public var subjectID: String
    public var householdID: String?
    public var villageCode: String?
    public var townshipCode: String?
    public var period: String
    public var message: String
    public var evidence: [Evidence]
    public var ruleVersion: String

    /// Alerts of one household (or one subject outside the roster) in a period form one case.
    public var caseKey: String { householdID ?? "\(subjectKind.rawValue):\(subjectID)" }
}

/// Evaluates rules over the store for a period. Deterministic: the same data gives the same
/// alerts in the same order.
public final class RuleEngine {
    typealias Rec = [String: Value]

    public let rules: [Rule]
    public let params: RuleParams
    let types: TypeCatalog
    let store: any MonitoringStore
    private var cache: [String: [Rec]] = [:]
    private var linkIndex: [String: [String: [Int]]] = [:]
    private var households: [String: Rec] = [:]
    private var membersOf: [String: [Rec]] = [:]
    private var personByID: [String: Rec] = [:]
    private var householdsInVillage: [String: Int] = [:]
    /// The fields each type's records are loaded with: those the rules name, plus links and dates.
    private var needed: [String: Set<String>] = [:]

    public init(rules: [Rule], params: RuleParams, types: TypeCatalog, store: any MonitoringStore) throws {
        self.rules = rules; self.params = params; self.types = types; self.store = store
        needed = Self.neededFields(rules, types)
        if let h = types["household"] {
            for r in try records(h) {
                guard case .text(let id) = r["household_id"] ?? .null else { continue }
                households[id] = r
                if case .text(let v) = r["village_code"] ?? .null { householdsInVillage[v, default: 0] += 1 }
            }
        }
        if let p = types["person"] {
            for r in try records(p) {
                guard case .text(let id) = r["id_number"] ?? .null else { continue }
                personByID[id] = r
                if case .text(let h) = r["household_id"] ?? .null { membersOf[h, default: []].append(r) }
            }
        }
    }

    /// Every field name a rule can reach, per record type.
    static func neededFields(_ rules: [Rule], _ types: TypeCatalog) -> [String: Set<String>] {
        var need: [String: Set<String>] = ["household": ["household_id", "village_code"], "person": ["id_number", "household_id"]]
        func names(_ e: Expression?) -> [String] {
            guard let e else { return [] }
            switch e {
            case .literal: return []
            case .list(let items, _): return items.flatMap { names($0) }
            case .field(let n, _): return [n]
            case .unary(_, let x, _): return names(x)
            case .binary(_, let a, let b, _): return names(a) + names(b)
            case .call(_, let args, _): return args.flatMap { names($0) }
            }
        }
        for rule in rules {
            var refs = names(rule.when) + names(rule.suppressIf)
            for part in rule.message { if case .expression(let e) = part { refs += names(e) } }
            for r in refs {
                let parts = r.split(separator: ".", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { continue }
                if parts[0] == "household" { need["household", default: []].insert(parts[1]) }
                else if parts[0] == "person" || parts[0] == "members" { need["person", default: []].insert(parts[1]) }
                else if let u = rule.uses.first(where: { $0.name == parts[0] }) { need[u.type.name, default: []].insert(parts[1]) }
            }
            for u in rule.uses {
                var set = need[u.type.name, default: []]
                if let l = u.type.link { set.insert(l) }
                if let d = u.dateField { set.insert(d) }
                if u.name == rule.trigger, let by = rule.by { set.insert(by) }
                set.formUnion(names(u.filter))
                for c in u.computed { set.formUnion(names(c.expression)) }
                for f in u.type.fields where f.type == .region { set.insert(f.name) }
                need[u.type.name] = set
            }
        }
        return need
    }

    /// A use's records: when its filter (and window) translate to SQL, only those are read.
    func records(_ use: Rule.Use, period: Period) throws -> [Rec] {
        var parts: [(sql: String, args: [Value])] = []
        if let f = use.filter, let s = SQLFilter.translate(f, use.type) { parts.append(s) }
        if let d = use.dateField, use.windowMonths != nil || use.yearToDate {
            let start = use.yearToDate ? CivilDate(year: period.year, month: 1, day: 1)! : period.adding(months: -((use.windowMonths ?? 1) - 1)).firstDay
            // Dates are stored as text that sorts like the date; the window is re-checked row by row.
            parts.append(("(\(SQLiteStore.quote(d)) >= ? AND \(SQLiteStore.quote(d)) < ?)", [.text(start.description), .text(period.lastDay.adding(days: 1).description)]))
        }
        guard !parts.isEmpty else { return try records(use.type) }
        let filter = (parts.map(\.sql).joined(separator: " AND "), parts.flatMap(\.args))
        let key = use.type.name + "\u{1F}" + filter.0 + "\u{1F}" + filter.1.map(\.description).joined(separator: "\u{1E}")
        if let c = cache[key] { return c }
        let rows = try store.records(of: use.type, fields: Array(needed[use.type.name] ?? Set(use.type.fields.map(\.name))), where: filter)
        cache[key] = rows
        return rows
    }

    func records(_ t: RecordType) throws -> [Rec] {
        if let c = cache[t.name] { return c }
        let all = try store.records(of: t, fields: Array(needed[t.name] ?? Set(t.fields.map(\.name))), where: nil)
        cache[t.name] = all
        return all
    }

    /// Positions of a type's records by the value of its link field.
    func byLink(_ t: RecordType) throws -> [String: [Int]] {
        if let i = linkIndex[t.name] { return i }
        var idx: [String: [Int]] = [:]
        if let link = t.link {
            for (i, r) in try records(t).enumerated() {
                if case .text(let v) = r[link] ?? .null { idx[v, default: []].append(i) }
            }
        }
        linkIndex[t.name] = idx
        return idx
    }

    /// Evaluates every rule for the period; `only` limits each rule to the named subjects.
    public func evaluate(period: Period, only: Set<String>? = nil) throws -> [Alert] {
        try evaluateScoped(period: period, only: only).alerts
    }

    /// Alerts, and for each rule the subjects that were evaluated (so that an alert whose
    /// condition no longer holds on newer data can be withdrawn).
    public func evaluateScoped(period: Period, only: Set<String>? = nil) throws -> (alerts: [Alert], evaluated: [String: Set<String>]) {
        var alerts: [Alert] = []
        var evaluated: [String: Set<String>] = [:]
        for rule in rules {
            var seen = Set<String>()
            alerts += try evaluate(rule, period: period, only: only, seen: &seen)
            evaluated[rule.name] = seen
        }
        return (alerts, evaluated)
    }

    struct Context {
        var vars: [String: Value]
        var sets: [String: [Rec]]
    }

    /// An evidence record to fetch whole for an alert that fired: fetched in batches after the
    /// rule has run, instead of one query per record.
    struct PendingEvidence {
        var alert: Int
        var type: RecordType
        var id: Int64
    }

    func evaluate(_ rule: Rule, period: Period, only: Set<String>?, seen: inout Set<String>) throws -> [Alert] {
        var out: [Alert] = []
        var pending: [PendingEvidence] = []
        let base: [String: Value] = {
            var v: [String: Value] = ["period_start": .date(period.firstDay), "period_end": .date(period.lastDay)]
            for (k, _) in params.values { if let x = params.value(k, year: period.year) { v[k] = .decimal(x) } }
            return v
        }()
        func related(_ use: Rule.Use, keys: [String]) throws -> [Rec] {
            let all = try records(use.type)
            let idx = try byLink(use.type)
            var rows: [Rec] = []
            for k in keys { for i in idx[k] ?? [] { rows.append(all[i]) } }
            return window(rows, use, period)
        }
        switch rule.subject {
        case .household:
            for id in households.keys.sorted() {
                if let only, !only.contains(id) { continue }
                seen.insert(id)
                let h = households[id]!
                let members = membersOf[id] ?? []
                var vars = base
                for (k, v) in h where !k.hasPrefix("_") { vars["household." + k] = v }
                vars["household.members"] = .decimal(Double(members.count))
                var sets: [String: [Rec]] = ["members": members]
                for u in rule.uses {
                    switch u.type.subject {
                    case .person: sets[u.name] = try related(u, keys: members.compactMap { $0["id_number"]?.text })
                    case .household: sets[u.name] = try related(u, keys: [id])
                    case .village: sets[u.name] = try related(u, keys: [h["village_code"]?.text].compactMap { $0 })
                    case .none: sets[u.name] = []
                    }
                }
                if let a = try fire(rule, Context(vars: vars, sets: sets), subject: id, household: id, village: h["village_code"]?.text, period: period,
                                   index: out.count, pending: &pending) { out.append(a) }
            }
        case .person, .village, .group:
            let trigger = rule.uses.first { $0.name == rule.trigger }!
            let by = rule.by!
            var groups: [String: [Rec]] = [:]
            for r in window(try records(trigger, period: period), trigger, period) {
                if let k = r[by]?.text { groups[k, default: []].append(r) }
            }
            // Group subjects: every set of the trigger's type, split by the subject key once.
            var grouped: [String: [String: [Rec]]] = [:]
            if rule.subject == .group {
                for u in rule.uses where u.type.name == trigger.type.name {
                    grouped[u.name] = Dictionary(grouping: window(try records(u, period: period), u, period), by: { $0[by]?.text ?? "" })
                }
            }
            for key in groups.keys.sorted() {
                if let only, !only.contains(key) { continue }
                seen.insert(key)
                var vars = base
                var sets: [String: [Rec]] = [:]
                var householdID: String? = nil
                var village: String? = nil
                switch rule.subject {
                case .person:
                    let p = personByID[key]
                    vars["person.id"] = .text(key)
                    vars["in_roster"] = .bool(p != nil)
                    if let p { for (k, v) in p where !k.hasPrefix("_") { vars["person." + k] = v } }
                    householdID = p?["household_id"]?.text
                    if let hid = householdID, let h = households[hid] {
                        for (k, v) in h where !k.hasPrefix("_") { vars["household." + k] = v }
                        village = h["village_code"]?.text
                    }
                    sets["members"] = householdID.flatMap { membersOf[$0] } ?? []
                    for u in rule.uses {
                        if u.name == trigger.name { sets[u.name] = groups[key]!; continue }
                        switch u.type.subject {
                        case .person: sets[u.name] = try related(u, keys: [key])
                        case .household: sets[u.name] = try related(u, keys: [householdID].compactMap { $0 })
                        default: sets[u.name] = []
                        }
                    }
                case .village:
                    vars["village.code"] = .text(key)
                    vars["village.roster_households"] = .decimal(Double(householdsInVillage[key] ?? 0))
                    village = key
                    for u in rule.uses {
                        sets[u.name] = u.name == trigger.name ? groups[key]! : (u.type.subject == .village ? try related(u, keys: [key]) : [])
                    }
                default:
                    vars["group.key"] = .text(key)
                    for u in rule.uses { sets[u.name] = grouped[u.name]?[key] ?? [] }
                }
                if village == nil, let first = groups[key]?.first {
                    // Outside the roster: route by the trigger record's own region (12-digit village code when given).
                    village = trigger.type.fields.first { $0.type == .region }.flatMap { first[$0.name]?.text }
                }
                if let a = try fire(rule, Context(vars: vars, sets: sets), subject: key, household: householdID, village: village, period: period,
                                   index: out.count, pending: &pending) { out.append(a) }
            }
        }
        try fillEvidence(&out, pending)
        return out
    }

    /// Fetches the whole department records behind the alerts' evidence, in batches of a few
    /// thousand per type (so neither one query per record nor every record at once).
    func fillEvidence(_ alerts: inout [Alert], _ pending: [PendingEvidence]) throws {
        guard !pending.isEmpty else { return }
        var byType: [String: [PendingEvidence]] = [:]
        for p in pending { byType[p.type.name, default: []].append(p) }
        var touched = Set<Int>()
        for (_, list) in byType.sorted(by: { $0.key < $1.key }) {
            for start in stride(from: 0, to: list.count, by: 5_000) {
                let part = list[start..<min(start + 5_000, list.count)]
                let fetched = try store.records(of: part.first!.type, ids: part.map(\.id))
                for p in part {
                    guard let r = fetched[p.id] else { continue }
                    alerts[p.alert].evidence.append(Self.evidence(p.type, r))
                    touched.insert(p.alert)
                }
            }
        }
        for i in touched {
            alerts[i].evidence = Array(Set(alerts[i].evidence)).sorted { ($0.type, $0.source, $0.row) < ($1.type, $1.source, $1.row) }
        }
    }

    static func evidence(_ type: RecordType, _ r: [String: Value]) -> Evidence {
        var fields: [String: String] = [:]
        for f in type.fields { if let v = r[f.name], !v.isNull { fields[f.name] = v.description } }
        return Evidence(type: type.name, source: r["_source"]?.text ?? "", run: Int64(r["_run_id"]?.number ?? 0),
                        row: Int(r["_row"]?.number ?? 0), fields: fields)
    }

    /// Records of a set inside its window, passing its filter, with computed values, in date order.
    func window(_ rows: [Rec], _ use: Rule.Use, _ period: Period) -> [Rec] {
        var start: CivilDate? = nil
        if let n = use.windowMonths { start = period.adding(months: -(n - 1)).firstDay }
        if use.yearToDate { start = CivilDate(year: period.year, month: 1, day: 1) }
        let end = period.lastDay
        var out: [Rec] = []
        for var r in rows {
            if let start, let f = use.dateField {
                guard let d = Self.date(r[f]), d >= start, d <= end else { continue }
            }
            for c in use.computed {
                r[c.name] = ExpressionEvaluator.evaluate(c.expression) { name in
                    if name == "period_start" { return .date(period.firstDay) }
                    if name == "period_end" { return .date(period.lastDay) }
                    return r[name] ?? self.params.value(name, year: period.year).map(Value.decimal) ?? .null
                }
            }
            if let f = use.filter {
                let keep = ExpressionEvaluator.evaluate(f) { name in
                    r[name] ?? self.params.value(name, year: period.year).map(Value.decimal) ?? .null
                }
                if ExpressionEvaluator.truth(keep) != true { continue }
            }
            out.append(r)
        }
        if let f = use.dateField {
            out.sort { (Self.date($0[f])?.daysSinceEpoch ?? 0, $0["_id"]?.number ?? 0) < (Self.date($1[f])?.daysSinceEpoch ?? 0, $1["_id"]?.number ?? 0) }
        }
        return out
    }

    static func date(_ v: Value?) -> CivilDate? {
        switch v {
        case .date(let d)?, .datetime(let d, _)?: return d
        default: return nil
        }
    }

    func fire(_ rule: Rule, _ ctx: Context, subject: String, household: String?, village: String?, period: Period,
              index: Int, pending: inout [PendingEvidence]) throws -> Alert? {
        let lookup: (String) -> Value = { ctx.vars[$0] ?? .null }
        let agg: (String, String) -> Value? = { fn, arg in Self.aggregate(fn, arg, ctx.sets, rule) }
        guard ExpressionEvaluator.truth(ExpressionEvaluator.evaluate(rule.when, lookup, aggregate: agg)) == true else { return nil }
        if let s = rule.suppressIf, ExpressionEvaluator.truth(ExpressionEvaluator.evaluate(s, lookup, aggregate: agg)) == true { return nil }
        var message = ""
        for part in rule.message {
            switch part {
            case .text(let t): message += t
            case .expression(let e): message += Self.display(ExpressionEvaluator.evaluate(e, lookup, aggregate: agg))
            }
        }
        var evidence: [Evidence] = []
        for u in rule.uses {
            for partial in (ctx.sets[u.name] ?? []).prefix(20) {
                // The whole department record, fetched (in batches) only for alerts that fire.
                if let id = partial["_id"]?.number {
                    pending.append(PendingEvidence(alert: index, type: u.type, id: Int64(id)))
                } else {
                    evidence.append(Self.evidence(u.type, partial))
                }
            }
        }
        let township = village.flatMap { $0.count >= 9 ? String($0.prefix(9)) : nil }
        return Alert(rule: rule.name, title: rule.title, severity: rule.severity, subjectKind: rule.subject, subjectID: subject,
                     householdID: household, villageCode: village, townshipCode: township, period: period.description,
                     message: message, evidence: Array(Set(evidence)).sorted { ($0.type, $0.source, $0.row) < ($1.type, $1.source, $1.row) },
                     ruleVersion: rule.version)
    }

    static func aggregate(_ fn: String, _ arg: String, _ sets: [String: [Rec]], _ rule: Rule) -> Value? {
        let parts = arg.split(separator: ".", maxSplits: 1).map(String.init)
        guard let rows = sets[parts[0]] else { return nil }
        if fn == "count" { return .decimal(Double(rows.count)) }
        if fn == "exists" { return .bool(!rows.isEmpty) }
        guard parts.count == 2 else { return .null }
        let values = rows.map { $0[parts[1]] ?? .null }.filter { !$0.isNull }
        switch fn {
        case "sum": return .decimal(values.compactMap(\.number).reduce(0, +))
        case "avg":
            let n = values.compactMap(\.number)
            return n.isEmpty ? .null : .decimal(n.reduce(0, +) / Double(n.count))
        case "min", "max":
            if let d = values.compactMap({ date($0) }).sorted().first, fn == "min" { return .date(d) }
            if let d = values.compactMap({ date($0) }).sorted().last, fn == "max" { return .date(d) }
            let n = values.compactMap(\.number)
            guard !n.isEmpty else { return .null }
            return .decimal(fn == "min" ? n.min()! : n.max()!)
        case "latest":
            return rows.last.flatMap { $0[parts[1]] } ?? .null
        case "earliest":
            return rows.first.flatMap { $0[parts[1]] } ?? .null
        case "trailing_avg":
            let n = rows.dropLast().compactMap { $0[parts[1]]?.number }
            return n.isEmpty ? .null : .decimal(n.reduce(0, +) / Double(n.count))
        default: return nil
        }
    }

    /// Numbers as a township reads them: `68,213.40`, `3,120`.
    static func display(_ v: Value) -> String {
        switch v {
        case .null: return "—"
        case .money(let f): return group(Double(f) / 100, decimals: 2)
        case .decimal(let d):
            if abs(d) < 10000 { return d == d.rounded() ? String(Int64(d)) : String(format: "%.2f", d) }
            return d == d.rounded() ? group(d, decimals: 0) : group(d, decimals: 2)
        case .integer(let i): return String(i)
        case .text(let s): return s
        default: return v.description
        }
    }

    static func group(_ d: Double, decimals: Int) -> String {
        let s = String(format: "%.\(decimals)f", abs(d))
        let parts = s.split(separator: ".")
        var intPart = String(parts[0])
        var out = ""
        while intPart.count > 3 { out = "," + intPart.suffix(3) + out; intPart = String(intPart.dropLast(3)) }
        out = intPart + out
        if parts.count > 1 { out += "." + parts[1] }
        return (d < 0 ? "-" : "") + out
    }
}

extension Value {
    var text: String? {
        switch self {
        case .null: return nil
        case .text(let s): return s
        default: return description
        }
    }
}

extension RuleEngine {
    /// The subjects a run's new or changed records concern: their households, persons,
    /// villages and group keys. Evaluating only these after a pull keeps it incremental.
    public func subjects(touchedBy runID: Int64) throws -> Set<String> {
        var out = Set<String>()
        var typeNames = Set(rules.flatMap { $0.uses.map(\.type.name) })
        typeNames.formUnion(["household", "person"])
        let groupFields = Dictionary(grouping: rules.filter { $0.subject != .household }, by: { r in r.uses.first { $0.name == r.trigger }!.type.name })
            .mapValues { $0.compactMap(\.by) }
        for name in typeNames.sorted() {
            guard let t = types[name] else { continue }
            for r in try records(t) where Int64(r["_run_id"]?.number ?? -1) == runID {
                for f in groupFields[name] ?? [] { if let v = r[f]?.text { out.insert(v) } }
                if let h = r["household_id"]?.text { out.insert(h) }
                if name == "household", let h = r["household_id"]?.text {
                    // A household's change concerns its village (村级 rules) and its members (person rules).
                    if let v = r["village_code"]?.text { out.insert(v) }
                    for m in membersOf[h] ?? [] { if let id = m["id_number"]?.text { out.insert(id) } }
                }
                guard let link = t.link, let v = r[link]?.text else { continue }
                out.insert(v)
                switch t.subject {
                case .person: if let h = personByID[v]?["household_id"]?.text { out.insert(h) }
                case .village: for (id, h) in households where h["village_code"]?.text == v { out.insert(id) }
                default: break
                }
            }
        }
        return out
    }
}

/// How a period's alerts compare with known cases: per rule, how many planted subjects were
/// found (recall), how many look-alikes were flagged, and how many alerts there were.
public struct RuleScore: Sendable {
    public struct Line: Sendable {
        public var rule: String
        public var planted: Int
        public var found: Int
        public var negatives: Int
        public var negativesFlagged: Int
        public var alerts: Int
        public var alertsOnPlanted: Int
        public var recall: Double { planted == 0 ? 1 : Double(found) / Double(planted) }
        public var precision: Double { alerts == 0 ? 1 : Double(alertsOnPlanted) / Double(alerts) }
    }
    public var lines: [Line]

    public init(alerts: [Alert], planted: [String: [String]], negatives: [String: [String]]) {
        let byRule = Dictionary(grouping: alerts, by: \.rule)
        lines = Set(planted.keys).union(byRule.keys).sorted().map { rule in
            let list = byRule[rule] ?? []
            let hits = Set(list.flatMap { [$0.subjectID, $0.householdID].compactMap { $0 } })
            let p = planted[rule] ?? [], n = negatives[rule] ?? []
            let plantedSet = Set(p)
            return Line(rule: rule, planted: p.count, found: p.filter { hits.contains($0) }.count, negatives: n.count,
                        negativesFlagged: n.filter { hits.contains($0) }.count, alerts: list.count,
                        alertsOnPlanted: list.filter { plantedSet.contains($0.subjectID) || plantedSet.contains($0.householdID ?? "") }.count)
        }
    }
}
