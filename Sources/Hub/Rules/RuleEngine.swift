import Foundation

/// One record behind an alert, as the township sees it beside the alert.
public struct Evidence: Sendable, Codable, Hashable {
    public var type: String
    public var source: String
    public var run: Int64
    public var row: Int
    public var fields: [String: String]

    public init(type: String, source: String, run: Int64, row: Int, fields: [String: String]) {
        self.type = type; self.source = source; self.run = run; self.row = row; self.fields = fields
    }

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
    /// The person's name for a person subject (from the roster, else from the records that
    /// raised it): what the inbox shows for a case outside the roster.
    public var subjectName: String?

    public init(rule: String, title: String, severity: Rule.Severity, subjectKind: Rule.Subject, subjectID: String, householdID: String?,
                villageCode: String?, townshipCode: String?, period: String, message: String, evidence: [Evidence], ruleVersion: String,
                subjectName: String? = nil) {
        self.rule = rule; self.title = title; self.severity = severity; self.subjectKind = subjectKind; self.subjectID = subjectID
        self.householdID = householdID; self.villageCode = villageCode; self.townshipCode = townshipCode; self.period = period
        self.message = message; self.evidence = evidence; self.ruleVersion = ruleVersion; self.subjectName = subjectName
    }

    /// Alerts of one household (or one subject outside the roster) in a period form one case.
    public var caseKey: String { householdID ?? "\(subjectKind.rawValue):\(subjectID)" }
}

/// What one piece of a rule's evaluation produced: the alerts raised for a few thousand
/// subjects, and every subject that was evaluated (an earlier alert of one that no longer
/// fires may be withdrawn). A rule's chunks never share a subject.
public struct RuleChunk: Sendable {
    public var rule: String
    public var subjectKind: Rule.Subject
    /// The period of all its alerts.
    public var period: String
    public var alerts: [Alert]
    public var evaluated: [String]
    public init(rule: String, subjectKind: Rule.Subject, period: String, alerts: [Alert], evaluated: [String]) {
        self.rule = rule; self.subjectKind = subjectKind; self.period = period; self.alerts = alerts; self.evaluated = evaluated
    }
}

/// Evaluates rules over the store for a period. Deterministic: the same data gives the same
/// alerts in the same order.
///
/// Streams: the subjects of a rule are walked in key order from the store (households from
/// the roster; persons, villages and groups from the trigger's records sorted by their key)
/// and evaluated a chunk at a time (at most `chunkSize` subjects, and fewer when they have many
/// records: about `chunkRecords` records a chunk); the roster entries and records a chunk needs
/// are looked up through the link indexes, its alerts handed on, and nothing is kept. Memory
/// follows the chunk, not the roster or the feeds.
public final class RuleEngine {
    typealias Rec = [String: Value]

    public let rules: [Rule]
    public let params: RuleParams
    let types: TypeCatalog
    let store: any RuleReadingStore
    /// Subjects evaluated together: their records are read with one lookup per use.
    public var chunkSize = 2_000
    /// About how many records a chunk's subjects may bring (their sets, and the evidence of
    /// their alerts, are in memory together): a province's month with dozens of claims a person
    /// must not make chunks of a hundred thousand records. (20 million claims, 30 a person:
    /// 10,000 → 109 MB peak, 5,000 → 97 MB, and no slower.)
    public var chunkRecords = 5_000
    /// The fields each type's records are loaded with (see `neededFields`).
    private var needed: [String: Set<String>] = [:]
    /// The person rules that name `members` (the others skip reading them).
    private var readingMembers: Set<String> = []

    public init(rules: [Rule], params: RuleParams, types: TypeCatalog, store: any RuleReadingStore) throws {
        self.rules = rules; self.params = params; self.types = types; self.store = store
        needed = Self.neededFields(rules, types)
        readingMembers = Set(rules.filter(Self.readsMembers).map(\.name))
    }

    func fields(_ t: RecordType) -> [String] { Array(needed[t.name] ?? Set(t.fields.map(\.name))) }

    /// The names an expression reads (`claims.self_pay`, `household.size`, `members`).
    static func names(_ e: Expression?) -> [String] { e?.names ?? [] }

    /// The names a rule's condition, suppression and message read.
    static func references(_ rule: Rule) -> [String] {
        var refs = names(rule.when) + names(rule.suppressIf)
        for part in rule.message { if case .expression(let e) = part { refs += names(e) } }
        return refs
    }

    /// Whether a person rule reads the members of the person's household (one lookup fewer per chunk when not).
    static func readsMembers(_ rule: Rule) -> Bool {
        references(rule).contains { $0 == "members" || $0.hasPrefix("members.") }
    }

    /// The fields each type's records are read with. A rule's sets are read whole: an alert's
    /// evidence is the whole department record, taken from the set as it is (a second read by
    /// id, a random page per record, was most of the time of a large evaluation). Of the
    /// roster, only the fields the rules name, the links and the village.
    static func neededFields(_ rules: [Rule], _ types: TypeCatalog) -> [String: Set<String>] {
        var need: [String: Set<String>] = ["household": ["household_id", "village_code"], "person": ["id_number", "household_id", "name"]]
        for rule in rules {
            for r in references(rule) {
                let parts = r.split(separator: ".", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { continue }
                if parts[0] == "household" { need["household", default: []].insert(parts[1]) }
                else if parts[0] == "person" || parts[0] == "members" { need["person", default: []].insert(parts[1]) }
            }
            for u in rule.uses { need[u.type.name, default: []].formUnion(u.type.fields.map(\.name)) }
        }
        return need
    }

    /// What narrows a use's records as they are read: the simple part of its filter and its
    /// date window (both are checked again record by record, so this only saves reading).
    func condition(_ use: Rule.Use, period: Period) -> RecordFilter? {
        var parts: [RecordFilter] = []
        if let f = use.filter, let s = RecordFilter.narrowing(f, use.type) { parts.append(s) }
        if let d = use.dateField, use.windowMonths != nil || use.yearToDate {
            let start = use.yearToDate ? CivilDate(year: period.year, month: 1, day: 1)! : period.adding(months: -((use.windowMonths ?? 1) - 1)).firstDay
            if use.untilField != nil {
                // Events: anything begun by the window's end (whether it overlaps is checked per record).
                parts.append(.compare(d, .less, .date(period.lastDay.adding(days: 1))))
            } else {
                parts.append(.window(d, from: start, until: period.lastDay.adding(days: 1)))
            }
        }
        return parts.isEmpty ? nil : parts.count == 1 ? parts[0] : .all(parts)
    }

    /// Evaluates every rule for the period; `only` limits each rule to the named subjects.
    public func evaluate(period: Period, only: Set<String>? = nil) throws -> [Alert] {
        try evaluateScoped(period: period, only: only).alerts
    }

    /// Alerts, and for each rule the subjects that were evaluated (so that an alert whose
    /// condition no longer holds on newer data can be withdrawn). Holds every alert: for
    /// tests and small stores; `evaluate(period:only:_:)` streams.
    public func evaluateScoped(period: Period, only: Set<String>? = nil) throws -> (alerts: [Alert], evaluated: [String: Set<String>]) {
        var alerts: [Alert] = []
        var evaluated: [String: Set<String>] = [:]
        for rule in rules { evaluated[rule.name] = [] }
        try evaluate(period: period, only: only) { chunk in
            alerts += chunk.alerts
            evaluated[chunk.rule, default: []].formUnion(chunk.evaluated)
        }
        return (alerts, evaluated)
    }

    /// Evaluates every rule for the period over one snapshot of the store, handing each chunk
    /// of subjects to `emit` as soon as it is done (rule by rule, subjects in key order).
    public func evaluate(period: Period, only: Set<String>? = nil, _ emit: (RuleChunk) throws -> Void) throws {
        try store.reading { reader in
            // The household rules share one walk of the roster.
            let householdRules = rules.filter { $0.subject == .household }
            if !householdRules.isEmpty { try evaluateHouseholds(householdRules, period: period, only: only, reader: reader, emit: emit) }
            for rule in rules where rule.subject != .household {
                try evaluateTriggered(rule, period: period, only: only, reader: reader, emit: emit)
            }
        }
    }

    /// Records of one use's type read for a chunk, shared by the rules whose uses narrow the same way.
    struct LookupKey: Hashable { var type: String; var filter: RecordFilter? }

    struct Context {
        var vars: [String: Value]
        var sets: [String: [Rec]]
    }

    func baseVars(_ period: Period) -> [String: Value] {
        var v: [String: Value] = [:]
        for name in PeriodValues.variables.keys { v[name] = PeriodValues.variable(name, period) }
        for (k, _) in params.values { if let x = params.value(k, year: period.year) { v[k] = .decimal(x) } }
        return v
    }

    // MARK: Roster lookups (one query per kind and chunk, through the link indexes)

    /// Roster records (`person` by `id_number`, `household` by `household_id`) by that key; of
    /// several records with one key, the last read wins.
    func roster(_ reader: any RecordReader, _ typeName: String, by key: String, _ ids: [String]) throws -> [String: Rec] {
        guard let t = types[typeName], !ids.isEmpty else { return [:] }
        var out: [String: Rec] = [:]
        for r in try reader.records(of: t, fields: fields(t), whereField: key, in: ids, and: nil) {
            if case .text(let id) = r[key] ?? .null { out[id] = r }
        }
        return out
    }

    /// The roster's members of these households.
    func members(_ reader: any RecordReader, _ householdIDs: [String]) throws -> [String: [Rec]] {
        guard let pt = types["person"], !householdIDs.isEmpty else { return [:] }
        var out: [String: [Rec]] = [:]
        for p in try reader.records(of: pt, fields: fields(pt), whereField: "household_id", in: householdIDs, and: nil) {
            if case .text(let h) = p["household_id"] ?? .null { out[h, default: []].append(p) }
        }
        return out
    }

    /// A use's records for a chunk's subjects, by the value of the type's link field.
    func related(_ reader: any RecordReader, _ use: Rule.Use, keys: [String], period: Period) throws -> [String: [Rec]] {
        guard let link = use.type.link, !keys.isEmpty else { return [:] }
        var out: [String: [Rec]] = [:]
        for r in try reader.records(of: use.type, fields: fields(use.type), whereField: link, in: keys, and: condition(use, period: period)) {
            if case .text(let v) = r[link] ?? .null { out[v, default: []].append(r) }
        }
        return out
    }

    // MARK: Household subjects: every household of the roster

    func evaluateHouseholds(_ rules: [Rule], period: Period, only: Set<String>?, reader: any RecordReader,
                            emit: (RuleChunk) throws -> Void) throws {
        guard let ht = types["household"], ht.field("household_id") != nil else { return }
        var batch: [(id: String, record: Rec)] = []
        // How many households the next chunk takes: fewer when the last ones brought many records
        // (the first guess: a household and its members, about four).
        var size = max(1, min(chunkSize, chunkRecords / 4))
        func flush() throws {
            guard !batch.isEmpty else { return }
            let records = try householdChunk(rules, batch, period: period, reader: reader, emit: emit)
            let perHousehold = max(Double(records) / Double(batch.count), 1)
            size = max(1, Int(min(Double(chunkSize), Double(chunkRecords) / perHousehold)))
            batch.removeAll(keepingCapacity: true)
        }
        func visit(_ r: Rec) throws {
            guard case .text(let id) = r["household_id"] ?? .null else { return }
            // Several records of one household (two sources): the last read stands.
            if let last = batch.last, last.id == id { batch[batch.count - 1].record = r; return }
            if batch.count >= size { try flush() }
            batch.append((id, r))
        }
        if let only {
            let keys = only.sorted()
            for start in stride(from: 0, to: keys.count, by: chunkSize) {
                let part = Array(keys[start..<min(start + chunkSize, keys.count)])
                for r in try reader.records(of: ht, fields: fields(ht), whereField: "household_id", in: part, and: nil) { try visit(r) }
            }
        } else {
            try reader.scan(ht, fields: fields(ht), where: nil, orderBy: ["household_id"]) { try visit($0); return true }
        }
        try flush()
    }

    /// One chunk of households through every household rule: the members read once, each
    /// use's records once per type and condition (rules that read the same set share it).
    /// Returns how many records it read.
    func householdChunk(_ rules: [Rule], _ batch: [(id: String, record: Rec)], period: Period, reader: any RecordReader,
                        emit: (RuleChunk) throws -> Void) throws -> Int {
        let ids = batch.map(\.id)
        let membersOf = try members(reader, ids)
        var records = batch.count + membersOf.values.reduce(0) { $0 + $1.count }
        func keys(_ u: Rule.Use, _ id: String, _ h: Rec) -> [String] {
            switch u.type.subject {
            case .person: return (membersOf[id] ?? []).compactMap { $0["id_number"]?.text }
            case .household: return [id]
            case .village: return [h["village_code"]?.text].compactMap { $0 }
            case .none: return []
            }
        }
        var lookups: [LookupKey: [String: [Rec]]] = [:]
        let base = baseVars(period)
        for rule in rules {
            var byUse: [String: [String: [Rec]]] = [:]
            for u in rule.uses {
                let c = condition(u, period: period)
                let lookup = LookupKey(type: u.type.name, filter: c)
                if lookups[lookup] == nil {
                    let found = try related(reader, u, keys: batch.flatMap { keys(u, $0.id, $0.record) }, period: period)
                    records += found.values.reduce(0) { $0 + $1.count }
                    lookups[lookup] = found
                }
                byUse[u.name] = lookups[lookup]
            }
            var alerts: [Alert] = []
            for (id, h) in batch {
                let members = membersOf[id] ?? []
                var vars = base
                for (k, v) in h where !k.hasPrefix("_") { vars["household." + k] = v }
                vars["household.members"] = .decimal(Double(members.count))
                var sets: [String: [Rec]] = ["members": members]
                for u in rule.uses {
                    let found = byUse[u.name] ?? [:]
                    sets[u.name] = window(keys(u, id, h).flatMap { found[$0] ?? [] }, u, period)
                }
                if let a = fire(rule, Context(vars: vars, sets: sets), subject: id, household: id, village: h["village_code"]?.text, period: period) {
                    alerts.append(a)
                }
            }
            try emit(RuleChunk(rule: rule.name, subjectKind: rule.subject, period: period.description, alerts: alerts, evaluated: ids))
        }
        return records
    }

    // MARK: Person, village and group subjects: brought in by the trigger's records

    /// A subject brought in by the trigger: its key and the records of the trigger's type it
    /// groups, per use of that type (windowed and filtered).
    typealias Triggered = (key: String, sets: [String: [Rec]])

    func evaluateTriggered(_ rule: Rule, period: Period, only: Set<String>?, reader: any RecordReader,
                           emit: (RuleChunk) throws -> Void) throws {
        guard let trigger = rule.uses.first(where: { $0.name == rule.trigger }), let by = rule.by, trigger.type.field(by) != nil else { return }
        // A group subject reads every use of the trigger's type from the one walk; person and
        // village subjects read the others through the link.
        let walked = rule.subject == .group ? rule.uses.filter { $0.type.name == trigger.type.name } : [trigger]
        let filter: RecordFilter? = {
            var parts: [RecordFilter] = []
            for u in walked {
                guard let c = condition(u, period: period) else { return nil }
                parts.append(c)
            }
            return parts.count == 1 ? parts[0] : .any(parts)
        }()
        var batch: [Triggered] = []
        var batchRecords = 0
        var current: String? = nil
        var rows: [Rec] = []
        func close() throws {
            guard let key = current else { return }
            current = nil
            var sets: [String: [Rec]] = [:]
            for u in walked { sets[u.name] = window(rows, u, period) }
            rows.removeAll(keepingCapacity: true)
            guard !(sets[trigger.name] ?? []).isEmpty else { return }
            let records = sets.values.reduce(0) { $0 + $1.count }
            if !batch.isEmpty, batch.count >= chunkSize || batchRecords + records > chunkRecords {
                try triggeredChunk(rule, trigger, batch, period: period, reader: reader, emit: emit)
                batch.removeAll(keepingCapacity: true)
                batchRecords = 0
            }
            batch.append((key, sets))
            batchRecords += records
        }
        try reader.scan(trigger.type, fields: fields(trigger.type), where: filter, orderBy: [by]) { r in
            guard let k = r[by]?.text else { return true }
            if let only, !only.contains(k) { return true }
            if k != current { try close(); current = k }
            rows.append(r)
            return true
        }
        try close()
        if !batch.isEmpty { try triggeredChunk(rule, trigger, batch, period: period, reader: reader, emit: emit) }
    }

    func triggeredChunk(_ rule: Rule, _ trigger: Rule.Use, _ batch: [Triggered], period: Period, reader: any RecordReader,
                        emit: (RuleChunk) throws -> Void) throws {
        let keys = batch.map(\.key)
        var personByID: [String: Rec] = [:], householdByID: [String: Rec] = [:], membersOf: [String: [Rec]] = [:]
        var byUse: [String: [String: [Rec]]] = [:]
        var rosterHouseholds: [String: Int] = [:]
        let others = rule.uses.filter { $0.name != trigger.name }
        switch rule.subject {
        case .person:
            personByID = try roster(reader, "person", by: "id_number", keys)
            let hids = Array(Set(personByID.values.compactMap { $0["household_id"]?.text }))
            householdByID = try roster(reader, "household", by: "household_id", hids)
            if readingMembers.contains(rule.name) { membersOf = try members(reader, hids) }
            for u in others {
                switch u.type.subject {
                case .person: byUse[u.name] = try related(reader, u, keys: keys, period: period)
                case .household: byUse[u.name] = try related(reader, u, keys: hids, period: period)
                default: break
                }
            }
        case .village:
            if let ht = types["household"] {
                rosterHouseholds = try reader.distinctCounts(of: ht, distinct: "household_id", by: "village_code", in: keys)
            }
            for u in others where u.type.subject == .village { byUse[u.name] = try related(reader, u, keys: keys, period: period) }
        case .group, .household:
            break
        }
        let base = baseVars(period)
        var alerts: [Alert] = []
        for (key, walked) in batch {
            var vars = base
            var sets: [String: [Rec]] = [:]
            var householdID: String? = nil
            var village: String? = nil
            for u in rule.uses { sets[u.name] = walked[u.name] ?? window(byUse[u.name]?[key] ?? [], u, period) }
            switch rule.subject {
            case .person:
                let p = personByID[key]
                vars["person.id"] = .text(key)
                vars["in_roster"] = .bool(p != nil)
                if let p { for (k, v) in p where !k.hasPrefix("_") { vars["person." + k] = v } }
                householdID = p?["household_id"]?.text
                if let hid = householdID, let h = householdByID[hid] {
                    for (k, v) in h where !k.hasPrefix("_") { vars["household." + k] = v }
                    village = h["village_code"]?.text
                }
                sets["members"] = householdID.flatMap { membersOf[$0] } ?? []
                for u in others where u.type.subject == .household {
                    sets[u.name] = window(householdID.flatMap { byUse[u.name]?[$0] } ?? [], u, period)
                }
            case .village:
                vars["village.code"] = .text(key)
                vars["village.roster_households"] = .decimal(Double(rosterHouseholds[key] ?? 0))
                village = key
            case .group, .household:
                vars["group.key"] = .text(key)
            }
            if village == nil {
                // Outside the roster: route by the best region the subject's own records carry.
                village = Self.bestRegion(rule.uses.map { sets[$0.name] ?? [] }, types: rule.uses.map(\.type))
            }
            if var a = fire(rule, Context(vars: vars, sets: sets), subject: key, household: householdID, village: village, period: period) {
                if rule.subject == .person {
                    a.subjectName = personByID[key]?["name"]?.text ?? Self.name(in: rule.uses.map { sets[$0.name] ?? [] }, types: rule.uses.map(\.type))
                }
                alerts.append(a)
            }
        }
        try emit(RuleChunk(rule: rule.name, subjectKind: rule.subject, period: period.description, alerts: alerts, evaluated: keys))
    }

    /// In place of an empty value in a message: which field is missing, in words
    /// (“（缺“收入年度”）”), so nobody reads a bare dash as a figure.
    func missing(_ e: Expression, _ lookup: (String) -> Value, _ rule: Rule) -> String {
        var titles: [String] = []
        for name in e.names where lookup(name).isNull {
            let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            let type = parts[0] == "household" ? types["household"]
                : parts[0] == "person" ? types["person"] : rule.uses.first { $0.name == parts[0] }?.type
            let title = type?.field(parts[1])?.title ?? parts[1]
            if !titles.contains(title) { titles.append(title) }
        }
        return titles.isEmpty ? "（无数据）" : "（缺“\(titles.joined(separator: "”“"))”）"
    }

    static func evidence(_ type: RecordType, _ r: [String: Value]) -> Evidence {
        var fields: [String: String] = [:]
        fields.reserveCapacity(type.fields.count)
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
                guard let d = Self.date(r[f]), d <= end else { continue }
                if let u = use.untilField {
                    // An event overlapping the window: begun by its end, not over before its start.
                    if let stop = Self.date(r[u]), stop < start { continue }
                } else if d < start { continue }
            }
            for c in use.computed {
                r[c.name] = ExpressionEvaluator.evaluate(c.expression) { name in
                    r[name] ?? PeriodValues.variable(name, period) ?? self.params.value(name, year: period.year).map(Value.decimal) ?? .null
                }
            }
            if let f = use.filter {
                let keep = ExpressionEvaluator.evaluate(f) { name in
                    r[name] ?? PeriodValues.variable(name, period) ?? self.params.value(name, year: period.year).map(Value.decimal) ?? .null
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

    /// A person's name as the records that concern them give it: the first non-empty field
    /// called `name` or titled 姓名 (the trigger's records first).
    static func name(in sets: [[Rec]], types: [RecordType]) -> String? {
        for (rows, type) in zip(sets, types) {
            guard let f = type.fields.first(where: { $0.name == "name" || $0.title.contains("姓名") })?.name else { continue }
            if let n = rows.lazy.compactMap({ $0[f]?.text }).first(where: { !$0.isEmpty }) { return n }
        }
        return nil
    }

    /// The most precise region code among these records' region fields (the trigger's first):
    /// a 12-digit village code, else a 9-digit township code; a county code or anything shorter
    /// places nothing, and the case waits in the county's dispatch queue.
    static func bestRegion(_ sets: [[Rec]], types: [RecordType]) -> String? {
        var township: String? = nil
        for (rows, type) in zip(sets, types) {
            let fields = type.fields.filter { $0.type == .region }.map(\.name)
            guard !fields.isEmpty else { continue }
            for r in rows {
                for f in fields {
                    guard let code = r[f]?.text, code.count >= 9, code.allSatisfy(\.isASCII), code.allSatisfy(\.isNumber) else { continue }
                    // Codes padded with zeros name a larger area: 411081000000 is the county,
                    // 411081101000 a township.
                    let townshipPart = code.dropFirst(6).prefix(3), villagePart = code.dropFirst(9).prefix(3)
                    if townshipPart == "000" { continue }
                    if code.count >= 12 && villagePart != "000" { return String(code.prefix(12)) }
                    if township == nil { township = String(code.prefix(9)) }
                }
            }
        }
        return township
    }

    func fire(_ rule: Rule, _ ctx: Context, subject: String, household: String?, village: String?, period: Period) -> Alert? {
        let lookup: (String) -> Value = { ctx.vars[$0] ?? .null }
        let agg: (String, String) -> Value? = { fn, arg in Self.aggregate(fn, arg, ctx.sets, rule) }
        guard ExpressionEvaluator.truth(ExpressionEvaluator.evaluate(rule.when, lookup, aggregate: agg)) == true else { return nil }
        if let s = rule.suppressIf, ExpressionEvaluator.truth(ExpressionEvaluator.evaluate(s, lookup, aggregate: agg)) == true { return nil }
        var message = ""
        for part in rule.message {
            switch part {
            case .text(let t): message += t
            case .expression(let e):
                let v = ExpressionEvaluator.evaluate(e, lookup, aggregate: agg)
                message += v.isNull ? missing(e, lookup, rule) : Self.display(v)
            }
        }
        // The first 20 records of each set, whole; a record in several sets is evidence once.
        var evidence: [(evidence: Evidence, id: Int64)] = []
        var seen = Set<String>()
        for u in rule.uses {
            for r in (ctx.sets[u.name] ?? []).prefix(20) {
                let id = Int64(r["_id"]?.number ?? 0)
                guard seen.insert("\(u.type.name)\u{1F}\(id)").inserted else { continue }
                evidence.append((Self.evidence(u.type, r), id))
            }
        }
        evidence.sort { ($0.evidence.type, $0.evidence.source, $0.evidence.row, $0.id) < ($1.evidence.type, $1.evidence.source, $1.evidence.row, $1.id) }
        let township = village.flatMap { $0.count >= 9 ? String($0.prefix(9)) : nil }
        return Alert(rule: rule.name, title: rule.title, severity: rule.severity, subjectKind: rule.subject, subjectID: subject,
                     householdID: household, villageCode: village.flatMap { $0.count >= 12 ? $0 : nil }, townshipCode: township, period: period.description,
                     message: message, evidence: evidence.map(\.evidence), ruleVersion: rule.version)
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
    /// The value as text (nil when empty): how keys and links compare.
    public var text: String? {
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
    /// Nil when the run touched more than `limit` of them (a first pull, a new month): then
    /// everything is evaluated, which gives the same alerts without holding a list as long as
    /// the feed.
    public func subjects(touchedBy runID: Int64, limit: Int = 100_000) throws -> Set<String>? {
        var out = Set<String>()
        var tooMany = false
        var typeNames = Set(rules.flatMap { $0.uses.map(\.type.name) })
        typeNames.formUnion(["household", "person"])
        let groupFields = Dictionary(grouping: rules.filter { $0.subject != .household }, by: { r in r.uses.first { $0.name == r.trigger }!.type.name })
            .mapValues { $0.compactMap(\.by) }
        try store.reading { reader in
            var changedHouseholds = Set<String>(), personLinks = Set<String>(), villageLinks = Set<String>()
            for name in typeNames.sorted() {
                guard let t = types[name] else { continue }
                var wanted = Set(fields(t)).union(["household_id", "village_code"]).union(groupFields[name] ?? [])
                if let l = t.link { wanted.insert(l) }
                guard !tooMany else { break }
                try reader.scan(t, fields: Array(wanted), where: .writtenBy(run: runID), orderBy: []) { r in
                    if out.count + changedHouseholds.count + personLinks.count + villageLinks.count > limit { tooMany = true; return false }
                    for f in groupFields[name] ?? [] { if let v = r[f]?.text { out.insert(v) } }
                    if let h = r["household_id"]?.text { out.insert(h) }
                    if name == "household", let h = r["household_id"]?.text {
                        // A household's change concerns its village (村级 rules) and its members (person rules).
                        if let v = r["village_code"]?.text { out.insert(v) }
                        changedHouseholds.insert(h)
                    }
                    guard let link = t.link, let v = r[link]?.text else { return true }
                    out.insert(v)
                    switch t.subject {
                    case .person: personLinks.insert(v)
                    case .village: villageLinks.insert(v)
                    default: break
                    }
                    return true
                }
            }
            guard !tooMany else { return }
            for members in try members(reader, Array(changedHouseholds)).values {
                for m in members { if let id = m["id_number"]?.text { out.insert(id) } }
            }
            for p in try roster(reader, "person", by: "id_number", Array(personLinks)).values { if let h = p["household_id"]?.text { out.insert(h) } }
            if let ht = types["household"] {
                for h in try reader.records(of: ht, fields: ["household_id"], whereField: "village_code", in: Array(villageLinks), and: nil) {
                    if let id = h["household_id"]?.text { out.insert(id) }
                }
            }
        }
        return tooMany || out.count > limit ? nil : out
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
