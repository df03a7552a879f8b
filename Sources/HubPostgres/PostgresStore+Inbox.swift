import Foundation
import Hub
import Synchronization

extension PostgresStore {
    /// What one user's cached inbox is keyed by: their scope's change counter with `rosterVersion`.
    /// One statement, outside a transaction: every page view asks, so each round trip counts.
    public func inboxVersion(for user: User) throws -> Int {
        var binds: [PGValue] = []
        let cases: String
        switch user.caseScope {
        case .nothing: return 0
        case .everything: cases = "SELECT n FROM store_versions WHERE name = 'cases'"
        case .area(let area):
            let inArea = area.condition("substr(name, 7)") { binds.append(.text($0)); return "$\(binds.count)" }
            cases = "SELECT sum(n) FROM store_versions WHERE name LIKE 'cases:%' AND \(inArea)"
        }
        return try pool.withConnection { c in
            let r = try c.one("SELECT (\(Self.latestPull)) AS roster, coalesce((\(cases)), 0)::bigint AS cases", binds)!
            return r.int("cases") &* 1_000_003 &+ r.int("roster")
        }
    }

    public var callsWaitOnNetwork: Bool { true }

    static let latestPull = "SELECT coalesce(max(id), 0) FROM runs WHERE status = 'succeeded'"

    public func rosterVersion() throws -> Int {
        try pool.withConnection { c in try c.one("SELECT (\(Self.latestPull)) AS n")!.int("n") }
    }

    /// A case's columns with its rules, titles and name (a household case's: its head's, 户主).
    func caseColumns(roster: Bool) -> String {
        let head = roster
            ? "(SELECT p.name FROM rec_person p WHERE p.household_id = c.household_id ORDER BY coalesce(p.relation = '户主', false) DESC, p._id LIMIT 1)"
            : "NULL"
        return """
            c.*, (SELECT string_agg(rule, ',' ORDER BY rule) FROM (SELECT DISTINCT rule FROM alerts WHERE case_id = c.id) r) AS rules,
            (SELECT string_agg(title, '|' ORDER BY rule) FROM (SELECT DISTINCT ON (rule) rule, title FROM alerts WHERE case_id = c.id ORDER BY rule) t) AS titles,
            coalesce(c.subject_name, CASE WHEN c.household_id IS NOT NULL THEN \(head) END) AS display_name
            """
    }

    func rosterHasNames() throws -> Bool {
        try pool.read { c in
            let columns = Set(try c.query("""
                SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'rec_person'
                """).map { $0.text("column_name") })
            return columns.isSuperset(of: ["name", "relation", "household_id", "id_number"])
        }
    }

    static let caseOrder = "c.deadline, CASE c.severity WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END, c.id"

    /// A search term: an ID number or 户编号 (whole, or at least its last 4 characters), else a name.
    static func searchCondition(_ term: String, roster: Bool, _ binds: inout [PGValue]) -> String? {
        let q = term.trimmingCharacters(in: .whitespaces).uppercased()
        guard !q.isEmpty else { return nil }
        let escaped = q.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_")
        func bind(_ s: String) -> String { binds.append(.text(s)); return "$\(binds.count)" }
        if q.count >= 4, q.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "X") }) {
            let exact = bind(q), suffix = bind("%" + escaped)
            var sql = " AND (c.subject_id = \(exact) OR c.household_id = \(exact) OR c.subject_id LIKE \(suffix) OR c.household_id LIKE \(suffix)"
            if roster { sql += " OR c.household_id IN (SELECT household_id FROM rec_person WHERE id_number = \(exact) OR id_number LIKE \(suffix))" }
            return sql + ")"
        }
        let like = bind("%" + escaped + "%")
        var sql = " AND (c.subject_name LIKE \(like)"
        if roster { sql += " OR c.household_id IN (SELECT household_id FROM rec_person WHERE name LIKE \(like))" }
        return sql + ")"
    }

    /// The filter's conditions over `cases c` in the user's scope, or nil when the user sees no case.
    func caseConditions(for user: User, filter: CaseFilter, today: CivilDate, roster: Bool, _ binds: inout [PGValue]) -> String? {
        func bind(_ v: PGValue) -> String { binds.append(v); return "$\(binds.count)" }
        var sql = ""
        switch user.caseScope {
        case .nothing: return nil
        case .everything: break
        case .area(let area): sql += " AND " + area.condition("c.township_code") { bind(.text($0)) }
        }
        if let t = filter.township, !t.isEmpty { sql += " AND c.township_code = \(bind(.text(t)))" }
        if let s = filter.search, let condition = Self.searchCondition(s, roster: roster, &binds) { sql += condition }
        if filter.awaitingDispatch { sql += " AND coalesce(c.township_code, '') = ''" }
        if let r = filter.rule, !r.isEmpty { sql += " AND EXISTS (SELECT 1 FROM alerts a WHERE a.case_id = c.id AND a.rule = \(bind(.text(r))))" }
        if let v = filter.village, !v.isEmpty { sql += " AND c.village_code = \(bind(.text(v)))" }
        if let s = filter.status { sql += " AND c.status = \(bind(.text(s.rawValue)))" }
        if let s = filter.severity { sql += " AND c.severity = \(bind(.text(s.rawValue)))" }
        if let p = filter.period, !p.isEmpty { sql += " AND c.period = \(bind(.text(p)))" }
        if filter.overdueOnly { sql += " AND c.status = 'open' AND c.deadline < \(bind(.text(today.description)))" }
        return sql
    }

    public func caseCount(for user: User, filter: CaseFilter, today: CivilDate) throws -> Int {
        var binds: [PGValue] = []
        guard let conditions = caseConditions(for: user, filter: filter, today: today, roster: try rosterHasNames(), &binds) else { return 0 }
        return try pool.read { c in try c.one("SELECT count(*) AS n FROM cases c WHERE true\(conditions)", binds)!.int("n") }
    }

    public func cases(for user: User, filter: CaseFilter, today: CivilDate) throws -> [CaseSummary] {
        let roster = try rosterHasNames()
        var binds: [PGValue] = []
        guard let conditions = caseConditions(for: user, filter: filter, today: today, roster: roster, &binds) else { return [] }
        let limit = max(0, min(filter.limit, CaseFilter.maxLimit)), offset = max(0, filter.offset)
        guard limit > 0 else { return [] }
        let names = try regionNames()
        let columns = caseColumns(roster: roster)
        return try pool.read { c in
            func fetch(_ more: String, limit: Int, offset: Int) throws -> [CaseSummary] {
                let n = binds.count
                return try c.query("SELECT \(columns) FROM cases c WHERE true\(conditions)\(more) ORDER BY \(Self.caseOrder) LIMIT $\(n + 1) OFFSET $\(n + 2)",
                                   binds + [.int(limit), .int(offset)]).map { Self.summary($0, names) }
            }
            // Open cases first, then the others, each by deadline.
            var out = try fetch(" AND c.status = 'open'", limit: limit, offset: offset)
            if out.count < limit {
                let open = try c.one("SELECT count(*) AS n FROM cases c WHERE true\(conditions) AND c.status = 'open'", binds)!.int("n")
                out += try fetch(" AND c.status <> 'open'", limit: limit - out.count, offset: max(0, offset - open))
            }
            return out
        }
    }

    public func inboxOverview(for user: User, today: CivilDate) throws -> InboxOverview {
        var scope = ""
        var scopeBinds: [PGValue] = []
        switch user.caseScope {
        case .nothing: return InboxOverview()
        case .everything: break
        case .area(let area): scope = " WHERE " + area.condition("township_code") { scopeBinds.append(.text($0)); return "$\(scopeBinds.count)" }
        }
        let all = scope.isEmpty
        let names = try regionNames()
        return try pool.read { c -> InboxOverview in
            var o = InboxOverview()
            let late = "$\(scopeBinds.count + 1)"
            for r in try c.query("SELECT status, count(*) AS n, count(*) FILTER (WHERE deadline < \(late)) AS late FROM cases\(scope) GROUP BY status",
                                 scopeBinds + [.text(today.description)]) {
                if r.text("status") == "open" { o.open = r.int("n"); o.overdue = r.int("late") } else if r.text("status") == "closed" { o.closed = r.int("n") }
            }
            for r in try c.query("SELECT DISTINCT rule, title FROM alerts\(scope) ORDER BY rule, title", scopeBinds) {
                let name = r.text("rule")
                if o.rules.last?.name != name { o.rules.append((name, r.text("title"))) }
            }
            for r in try c.query("SELECT DISTINCT village_code FROM cases\(all ? " WHERE" : scope + " AND") village_code IS NOT NULL ORDER BY village_code", scopeBinds) {
                let code = r.text("village_code")
                o.villages.append((code, names[code] ?? code))
            }
            return o
        }
    }

    static func summary(_ r: PGRow, _ names: [String: String]) -> CaseSummary {
        let t = r.string("township_code"), v = r.string("village_code")
        return CaseSummary(id: r.int64("id")!, period: r.text("period"), householdID: r.string("household_id"),
                           subjectKind: Rule.Subject(rawValue: r.text("subject_kind")) ?? .household, subjectID: r.text("subject_id"),
                           townshipCode: t, villageCode: v, township: t.flatMap { names[$0] }, village: v.flatMap { names[$0] },
                           severity: Rule.Severity(rawValue: r.text("severity")) ?? .low, status: CaseStatus(rawValue: r.text("status")) ?? .open,
                           deadline: r.text("deadline"), openedAt: r.text("opened_at"), outcome: r.string("outcome"), closedAt: r.string("closed_at"),
                           rules: r.text("rules").split(separator: ",").map(String.init),
                           titles: r.text("titles").split(separator: "|").map(String.init), subjectName: r.string("display_name"))
    }

    public func regionNames() throws -> [String: String] {
        let version = try rosterVersion()
        if let cached = regionNameCache.withLock({ $0 }), cached.version == version { return cached.names }
        let names = try pool.read { c -> [String: String] in
            guard try Self.tableExists("rec_household", c) else { return [:] }
            var out: [String: String] = [:]
            for r in try c.query("SELECT DISTINCT village_code, township, village FROM rec_household WHERE village_code IS NOT NULL") {
                guard let code = r.string("village_code") else { continue }
                if let v = r.string("village") { out[code] = v }
                if let t = r.string("township"), code.count >= 9 { out[String(code.prefix(9))] = t }
            }
            return out
        }
        regionNameCache.withLock { $0 = (version, names) }
        return names
    }

    public func caseDetail(_ id: Int64) throws -> CaseDetail? {
        let names = try regionNames()
        let columns = caseColumns(roster: try rosterHasNames())
        return try pool.read { c in
            guard let row = try c.one("SELECT \(columns) FROM cases c WHERE c.id = $1", [.int(id)]) else { return nil }
            let summary = Self.summary(row, names)
            var household: [String: Value]? = nil
            var members: [[String: Value]] = []
            func plain(_ r: PGRow) -> [String: Value] {
                var d: [String: Value] = [:]
                for (k, i) in r.index where !k.hasPrefix("_") { d[k] = Self.loose(r[i]) }
                return d
            }
            if let hid = summary.householdID, try Self.tableExists("rec_household", c) {
                household = try c.one("SELECT * FROM rec_household WHERE household_id = $1 ORDER BY _id DESC LIMIT 1", [.text(hid)]).map(plain)
                if try Self.tableExists("rec_person", c) {
                    members = try c.query("SELECT * FROM rec_person WHERE household_id = $1 ORDER BY _id", [.text(hid)]).map(plain)
                }
            }
            let dec = JSONDecoder()
            let alerts = try c.query("SELECT * FROM alerts WHERE case_id = $1 ORDER BY id", [.int(id)]).map { a in
                CaseDetail.AlertInfo(rule: a.text("rule"), title: a.text("title"), severity: Rule.Severity(rawValue: a.text("severity")) ?? .low,
                                     message: a.text("message"), evidence: (try? dec.decode([Evidence].self, from: Data(a.text("evidence").utf8))) ?? [],
                                     raisedAt: a.text("raised_at"), ruleVersion: a.text("rule_version"), mappingVersions: a.text("mapping_versions"))
            }
            let visits = try c.query("SELECT * FROM visits WHERE case_id = $1 ORDER BY id", [.int(id)]).map(Self.visit)
            let events = try c.query("SELECT * FROM case_events WHERE case_id = $1 ORDER BY id", [.int(id)]).map {
                CaseDetail.Event(at: $0.text("at"), username: $0.text("username"), action: $0.text("action"), detail: $0.text("detail"))
            }
            return CaseDetail(summary: summary, household: household, members: members, alerts: alerts, visits: visits, events: events)
        }
    }

    static func visit(_ v: PGRow) -> CaseDetail.Visit {
        CaseDetail.Visit(visitedOn: v.text("visited_on"), visitors: v.text("visitors"), findings: v.text("findings"),
                         outcome: VisitOutcome(rawValue: v.text("outcome")) ?? .unverifiable, monitoringType: v.string("monitoring_type"),
                         reason: v.string("reason"), recordedBy: v.text("recorded_by"), recordedAt: v.text("recorded_at"))
    }

    public func latestVisits(of caseIDs: [Int64]) throws -> [Int64: CaseDetail.Visit] {
        guard !caseIDs.isEmpty else { return [:] }
        return try pool.read { c in
            var out: [Int64: CaseDetail.Visit] = [:]
            for v in try c.query("SELECT DISTINCT ON (case_id) * FROM visits WHERE case_id = ANY($1) ORDER BY case_id, id DESC", [.ints(caseIDs)]) {
                out[v.int64("case_id")!] = Self.visit(v)
            }
            return out
        }
    }

    public func caseCounts(openedSince: String, today: CivilDate) throws -> [TownshipCounts] {
        let names = try regionNames()
        return try pool.read { c in
            try c.query("""
                SELECT coalesce(township_code, '') AS code, count(*) FILTER (WHERE opened_at >= $1) AS new,
                       count(*) FILTER (WHERE status = 'open') AS open, count(*) FILTER (WHERE status = 'open' AND deadline < $2) AS overdue
                FROM cases GROUP BY 1 ORDER BY 1
                """, [.text(openedSince), .text(today.description)]).map { r in
                let code = r.text("code")
                return TownshipCounts(code: code, name: names[code] ?? (code.isEmpty ? CaseStatus.awaitingDispatchName : code),
                                      new: r.int("new"), open: r.int("open"), overdue: r.int("overdue"))
            }
        }
    }

    public func dashboard(for user: User, today: CivilDate) throws -> Dashboard {
        var scope = "", binds: [PGValue] = []
        switch user.caseScope {
        case .nothing: return Dashboard(byTownship: [], byRule: [], byPeriod: [])
        case .everything: break
        case .area(let area): scope = " WHERE " + area.condition("c.township_code") { binds.append(.text($0)); return "$\(binds.count)" }
        }
        let late = "$\(binds.count + 1)"
        let names = try regionNames()
        return try pool.read { c in
            let t = try c.query("""
                SELECT coalesce(township_code, '') AS code, count(*) FILTER (WHERE status = 'open') AS open,
                       count(*) FILTER (WHERE status = 'open' AND deadline < \(late)) AS overdue,
                       count(*) FILTER (WHERE status = 'closed') AS closed, count(*) FILTER (WHERE outcome = 'monitor') AS monitored
                FROM cases c\(scope) GROUP BY 1 ORDER BY 1
                """, binds + [.text(today.description)]).map { r -> (code: String, name: String, open: Int, overdue: Int, closed: Int, monitored: Int) in
                let code = r.text("code")
                return (code, names[code] ?? (code.isEmpty ? CaseStatus.awaitingDispatchName : code), r.int("open"), r.int("overdue"), r.int("closed"), r.int("monitored"))
            }
            let rules = try c.query("""
                SELECT a.rule, min(a.title) AS title, count(DISTINCT a.case_id) AS cases,
                       count(DISTINCT CASE WHEN c.outcome IN ('monitor', 'already_monitored', 'confirmed') THEN c.id END) AS confirmed,
                       count(DISTINCT CASE WHEN c.outcome IN ('no_risk', 'data_wrong') THEN c.id END) AS rejected
                FROM alerts a JOIN cases c ON c.id = a.case_id\(scope) GROUP BY a.rule ORDER BY a.rule
                """, binds).map { ($0.text("rule"), $0.text("title"), $0.int("cases"), $0.int("confirmed"), $0.int("rejected")) }
            let periods = try c.query("SELECT period, count(*) AS raised, count(*) FILTER (WHERE status = 'closed') AS closed FROM cases c\(scope) GROUP BY period ORDER BY period",
                                      binds)
                .map { ($0.text("period"), $0.int("raised"), $0.int("closed")) }
            return Dashboard(byTownship: t, byRule: rules, byPeriod: periods)
        }
    }
}
