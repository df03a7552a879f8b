import Foundation
internal import GRDB

/// One case (案件) as the inbox lists it.
public struct CaseSummary: Sendable, Hashable {
    public var id: Int64
    public var period: String
    public var householdID: String?
    public var subjectKind: String
    public var subjectID: String
    public var townshipCode: String?
    public var villageCode: String?
    public var township: String?
    public var village: String?
    public var severity: String
    public var status: String
    public var deadline: String
    public var openedAt: String
    public var outcome: String?
    public var closedAt: String?
    public var rules: [String]
    public var titles: [String]

    public func isOverdue(today: CivilDate) -> Bool { status == "open" && deadline < today.description }
}

public struct CaseFilter: Sendable {
    public var rule: String?
    public var village: String?
    public var status: String?
    public var severity: String?
    public var overdueOnly = false
    public var period: String?
    public var township: String?
    public var limit = 500
    /// Cases to skip (paging).
    public var offset = 0
    public init() {}
    /// Identifies the filter in caches.
    public var cacheKey: String {
        [rule ?? "", village ?? "", status ?? "", severity ?? "", overdueOnly ? "1" : "0", period ?? "", township ?? "", String(limit), String(offset)].joined(separator: "\u{1F}")
    }
}

/// What the inbox shows above its list: counts and the choices of its filters, over
/// everything the user may see.
public struct InboxOverview: Sendable {
    public var open = 0
    public var overdue = 0
    public var closed = 0
    /// Rules that raised alerts in the user's scope, by name, with their titles.
    public var rules: [(name: String, title: String)] = []
    /// Villages with cases in the user's scope: code and name.
    public var villages: [(code: String, name: String)] = []
}

public struct CaseDetail: Sendable {
    public struct AlertInfo: Sendable {
        public var rule: String, title: String, severity: String, message: String, evidence: [Evidence], raisedAt: String, ruleVersion: String, mappingVersions: String
    }
    public struct Event: Sendable { public var at: String, username: String, action: String, detail: String }
    public struct Visit: Sendable {
        public var visitedOn: String, visitors: String, findings: String, outcome: VisitOutcome, monitoringType: String?, reason: String?, recordedBy: String, recordedAt: String
    }
    public var summary: CaseSummary
    public var household: [String: Value]?
    public var members: [[String: Value]]
    public var alerts: [AlertInfo]
    public var visits: [Visit]
    public var events: [Event]
}

extension SQLiteStore {
    static let caseColumns = """
        c.*, (SELECT group_concat(rule, ',') FROM (SELECT DISTINCT rule FROM alerts WHERE case_id = c.id ORDER BY rule)) AS rules,
        (SELECT group_concat(title, '|') FROM (SELECT DISTINCT title FROM alerts WHERE case_id = c.id ORDER BY rule)) AS titles
        """

    /// The cases a user may see, most urgent deadline first. A verifier sees only their townships.
    public func cases(for user: User, filter: CaseFilter = CaseFilter(), today: CivilDate = .today) throws -> [CaseSummary] {
        guard user.role.seesCases else { return [] }
        if !user.role.seesAllTownships && user.townships.isEmpty { return [] }
        let key = "cases\u{1E}\(Self.scopeKey(user))\u{1E}\(filter.cacheKey)\u{1E}\(today)"
        return try inboxCache.value(key, version: try inboxVersion(for: user)) {
            try uncachedCases(for: user, filter: filter, today: today)
        }
    }

    func uncachedCases(for user: User, filter: CaseFilter, today: CivilDate) throws -> [CaseSummary] {
        var conditions = ""
        var args: [any DatabaseValueConvertible] = []
        if !user.role.seesAllTownships {
            conditions += " AND c.township_code IN (\(user.townships.map { _ in "?" }.joined(separator: ", ")))"
            args += user.townships as [any DatabaseValueConvertible]
        }
        if let t = filter.township, !t.isEmpty { conditions += " AND c.township_code = ?"; args.append(t) }
        if let r = filter.rule, !r.isEmpty { conditions += " AND EXISTS (SELECT 1 FROM alerts a WHERE a.case_id = c.id AND a.rule = ?)"; args.append(r) }
        if let v = filter.village, !v.isEmpty { conditions += " AND c.village_code = ?"; args.append(v) }
        if let s = filter.status, !s.isEmpty { conditions += " AND c.status = ?"; args.append(s) }
        if let s = filter.severity, !s.isEmpty { conditions += " AND c.severity = ?"; args.append(s) }
        if let p = filter.period, !p.isEmpty { conditions += " AND c.period = ?"; args.append(p) }
        if filter.overdueOnly { conditions += " AND c.status = 'open' AND c.deadline < ?"; args.append(today.description) }
        let names = try regionNames()
        return try pool.read { db in
            func fetch(_ more: String, limit: Int, offset: Int) throws -> [CaseSummary] {
                try Row.fetchAll(db, sql: "SELECT \(Self.caseColumns) FROM cases c WHERE 1 = 1\(conditions)\(more) ORDER BY c.deadline, c.id LIMIT ? OFFSET ?",
                                 arguments: StatementArguments(args + [limit, offset])).map { Self.summary($0, names) }
            }
            // Open cases first, then the others, each by deadline: two queries that each walk
            // the (township, status, deadline) index instead of sorting the whole scope.
            var out = try fetch(" AND c.status = 'open'", limit: filter.limit, offset: filter.offset)
            if out.count < filter.limit {
                let open = try Int.fetchOne(db, sql: "SELECT count(*) FROM cases c WHERE 1 = 1\(conditions) AND c.status = 'open'", arguments: StatementArguments(args)) ?? 0
                out += try fetch(" AND c.status <> 'open'", limit: filter.limit - out.count, offset: max(0, filter.offset - open))
            }
            return out
        }
    }

    /// Counts and filter choices over the user's whole scope, computed in SQL (a county's
    /// scope can hold hundreds of thousands of cases) and kept until the store changes.
    public func inboxOverview(for user: User, today: CivilDate = .today) throws -> InboxOverview {
        guard user.role.seesCases else { return InboxOverview() }
        if !user.role.seesAllTownships && user.townships.isEmpty { return InboxOverview() }
        let key = "overview\u{1E}\(Self.scopeKey(user))\u{1E}\(today)"
        return try inboxCache.value(key, version: try inboxVersion(for: user)) {
            try uncachedOverview(for: user, today: today)
        }
    }

    func uncachedOverview(for user: User, today: CivilDate) throws -> InboxOverview {
        var scope = ""
        var args: [any DatabaseValueConvertible] = []
        if !user.role.seesAllTownships {
            scope = " WHERE township_code IN (\(user.townships.map { _ in "?" }.joined(separator: ", ")))"
            args = user.townships
        }
        let names = try regionNames()
        return try pool.read { db -> InboxOverview in
            var o = InboxOverview()
            for r in try Row.fetchAll(db, sql: "SELECT status, count(*) AS n, sum(deadline < ?) AS late FROM cases\(scope) GROUP BY status",
                                      arguments: StatementArguments([today.description] + args)) {
                let status: String = r["status"], n: Int = r["n"]
                if status == "open" { o.open = n; o.overdue = r["late"] ?? 0 } else if status == "closed" { o.closed = n }
            }
            for r in try Row.fetchAll(db, sql: "SELECT DISTINCT rule, title FROM alerts\(scope) ORDER BY rule", arguments: StatementArguments(args)) {
                let name: String = r["rule"]
                if o.rules.last?.name != name { o.rules.append((name, r["title"])) }
            }
            for code in try String.fetchAll(db, sql: "SELECT DISTINCT village_code FROM cases\(scope.isEmpty ? " WHERE" : scope + " AND") village_code IS NOT NULL ORDER BY village_code",
                                            arguments: StatementArguments(args)) {
                o.villages.append((code, names[code] ?? code))
            }
            return o
        }
    }

    public static func scopeKey(_ user: User) -> String {
        user.role.seesAllTownships ? "*" : user.townships.sorted().joined(separator: ",")
    }

    static func summary(_ r: Row, _ names: [String: String]) -> CaseSummary {
        let t: String? = r["township_code"], v: String? = r["village_code"]
        return CaseSummary(id: r["id"], period: r["period"], householdID: r["household_id"], subjectKind: r["subject_kind"], subjectID: r["subject_id"],
                           townshipCode: t, villageCode: v, township: t.flatMap { names[$0] }, village: v.flatMap { names[$0] },
                           severity: r["severity"], status: r["status"], deadline: r["deadline"], openedAt: r["opened_at"],
                           outcome: r["outcome"], closedAt: r["closed_at"],
                           rules: ((r["rules"] as String?) ?? "").split(separator: ",").map(String.init),
                           titles: ((r["titles"] as String?) ?? "").split(separator: "|").map(String.init))
    }

    /// Township and village names by code, from the roster (kept until the store changes).
    public func regionNames() throws -> [String: String] {
        try inboxCache.value("regionNames", version: try rosterVersion()) {
            try pool.read { db -> [String: String] in
                guard try db.tableExists("rec_household") else { return [:] }
                var out: [String: String] = [:]
                for r in try Row.fetchAll(db, sql: "SELECT DISTINCT village_code, township, village FROM rec_household WHERE village_code IS NOT NULL") {
                    guard let code: String = r["village_code"] else { continue }
                    if let v: String = r["village"] { out[code] = v }
                    if let t: String = r["township"], code.count >= 9 { out[String(code.prefix(9))] = t }
                }
                return out
            }
        }
    }

    /// A case with everything the case page shows, or nil when it does not exist.
    public func caseDetail(_ id: Int64) throws -> CaseDetail? {
        let names = try regionNames()
        return try pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT \(Self.caseColumns) FROM cases c WHERE c.id = ?", arguments: [id]) else { return nil }
            let summary = Self.summary(row, names)
            var household: [String: Value]? = nil
            var members: [[String: Value]] = []
            if let hid = summary.householdID, try db.tableExists("rec_household") {
                if let h = try Row.fetchOne(db, sql: "SELECT * FROM rec_household WHERE household_id = ? ORDER BY _id DESC LIMIT 1", arguments: [hid]) {
                    var d: [String: Value] = [:]
                    for (k, v) in h where !k.hasPrefix("_") { d[k] = Self.loose(v) }
                    household = d
                }
                if try db.tableExists("rec_person") {
                    members = try Row.fetchAll(db, sql: "SELECT * FROM rec_person WHERE household_id = ? ORDER BY _id", arguments: [hid]).map { p in
                        var d: [String: Value] = [:]
                        for (k, v) in p where !k.hasPrefix("_") { d[k] = Self.loose(v) }
                        return d
                    }
                }
            }
            let dec = JSONDecoder()
            let alerts = try Row.fetchAll(db, sql: "SELECT * FROM alerts WHERE case_id = ? ORDER BY id", arguments: [id]).map { a in
                CaseDetail.AlertInfo(rule: a["rule"], title: a["title"], severity: a["severity"], message: a["message"],
                                     evidence: (try? dec.decode([Evidence].self, from: Data((a["evidence"] as String).utf8))) ?? [],
                                     raisedAt: a["raised_at"], ruleVersion: a["rule_version"], mappingVersions: a["mapping_versions"])
            }
            let visits = try Row.fetchAll(db, sql: "SELECT * FROM visits WHERE case_id = ? ORDER BY id", arguments: [id]).map { v in
                CaseDetail.Visit(visitedOn: v["visited_on"], visitors: v["visitors"], findings: v["findings"], outcome: VisitOutcome(rawValue: v["outcome"]) ?? .unverifiable,
                                 monitoringType: v["monitoring_type"], reason: v["reason"], recordedBy: v["recorded_by"], recordedAt: v["recorded_at"])
            }
            let events = try Row.fetchAll(db, sql: "SELECT * FROM case_events WHERE case_id = ? ORDER BY id", arguments: [id]).map {
                CaseDetail.Event(at: $0["at"], username: $0["username"], action: $0["action"], detail: $0["detail"])
            }
            return CaseDetail(summary: summary, household: household, members: members, alerts: alerts, visits: visits, events: events)
        }
    }

    static func loose(_ v: DatabaseValue) -> Value {
        switch v.storage {
        case .null: return .null
        case .int64(let i): return .integer(i)
        case .double(let d): return .decimal(d)
        case .string(let s): return .text(s)
        case .blob: return .null
        }
    }

    public struct CaseChangeError: Error, CustomStringConvertible {
        public var description: String
        init(_ d: String) { description = d }
    }

    /// Records a home visit and closes the case (销号) with its outcome.
    public func recordVisit(caseID: Int64, by user: User, visit: VisitRecord, today: CivilDate = .today) throws {
        let problems = visit.problems(today: today)
        if !problems.isEmpty { throw CaseChangeError(problems.joined(separator: "；")) }
        try pool.write { db in
            guard let c = try Row.fetchOne(db, sql: "SELECT status FROM cases WHERE id = ?", arguments: [caseID]) else { throw CaseChangeError("案件不存在") }
            guard (c["status"] as String) == "open" else { throw CaseChangeError("案件已销号；如需再次核实，请县里先重新打开") }
            let now = Self.now()
            try db.execute(sql: """
                INSERT INTO visits (case_id, visited_on, visitors, findings, outcome, monitoring_type, reason, recorded_by, recorded_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [caseID, visit.visitedOn, visit.visitors, visit.findings, visit.outcome.rawValue, visit.monitoringType, visit.reason, user.username, now])
            try db.execute(sql: "UPDATE cases SET status = 'closed', outcome = ?, closed_at = ? WHERE id = ?", arguments: [visit.outcome.rawValue, now, caseID])
            var detail = "入户核实（\(visit.visitedOn)，\(visit.visitors)）：\(visit.outcome.chinese)"
            if let t = visit.monitoringType, visit.outcome == .monitor { detail += "（\(t)）" }
            if let r = visit.reason, !r.isEmpty { detail += "，原因：\(r)" }
            try db.execute(sql: "INSERT INTO case_events (case_id, at, username, action, detail) VALUES (?, ?, ?, '销号', ?)", arguments: [caseID, now, user.username, detail])
        }
    }

    /// The county reopens a closed case.
    public func reopen(caseID: Int64, by user: User, reason: String, deadlineDays: Int = 15) throws {
        guard user.role.reopens else { throw CaseChangeError("只有县级用户可以重新打开案件") }
        guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else { throw CaseChangeError("请说明重新打开的原因") }
        try pool.write { db in
            guard let c = try Row.fetchOne(db, sql: "SELECT status FROM cases WHERE id = ?", arguments: [caseID]) else { throw CaseChangeError("案件不存在") }
            guard (c["status"] as String) == "closed" else { throw CaseChangeError("案件尚未销号") }
            try db.execute(sql: "UPDATE cases SET status = 'open', outcome = NULL, closed_at = NULL, deadline = ? WHERE id = ?",
                           arguments: [CivilDate.today.adding(days: deadlineDays).description, caseID])
            try db.execute(sql: "INSERT INTO case_events (case_id, at, username, action, detail) VALUES (?, ?, ?, '重新打开', ?)", arguments: [caseID, Self.now(), user.username, reason])
        }
    }

    /// The latest visit of each case, for the ledger.
    public func latestVisits() throws -> [Int64: CaseDetail.Visit] {
        try pool.read { db in
            var out: [Int64: CaseDetail.Visit] = [:]
            for v in try Row.fetchAll(db, sql: "SELECT * FROM visits WHERE id IN (SELECT max(id) FROM visits GROUP BY case_id)") {
                out[v["case_id"]] = CaseDetail.Visit(visitedOn: v["visited_on"], visitors: v["visitors"], findings: v["findings"],
                                                     outcome: VisitOutcome(rawValue: v["outcome"]) ?? .unverifiable, monitoringType: v["monitoring_type"],
                                                     reason: v["reason"], recordedBy: v["recorded_by"], recordedAt: v["recorded_at"])
            }
            return out
        }
    }

    /// Counts for the county dashboard.
    public struct Dashboard: Sendable {
        public var byTownship: [(code: String, name: String, open: Int, overdue: Int, closed: Int, monitored: Int)]
        public var byRule: [(rule: String, title: String, cases: Int, confirmed: Int, rejected: Int)]
        public var byPeriod: [(period: String, raised: Int, closed: Int)]
    }

    public func dashboard(today: CivilDate = .today) throws -> Dashboard {
        let names = try regionNames()
        return try pool.read { db in
            let t = try Row.fetchAll(db, sql: """
                SELECT township_code AS code,
                       sum(status = 'open') AS open, sum(status = 'open' AND deadline < ?) AS overdue,
                       sum(status = 'closed') AS closed, sum(outcome = 'monitor') AS monitored
                FROM cases GROUP BY township_code ORDER BY township_code
                """, arguments: [today.description]).map { r -> (code: String, name: String, open: Int, overdue: Int, closed: Int, monitored: Int) in
                let code: String = r["code"] ?? ""
                return (code, names[code] ?? (code.isEmpty ? "（未分派乡镇）" : code), r["open"] ?? 0, r["overdue"] ?? 0, r["closed"] ?? 0, r["monitored"] ?? 0)
            }
            let rules = try Row.fetchAll(db, sql: """
                SELECT a.rule, a.title, count(DISTINCT a.case_id) AS cases,
                       count(DISTINCT CASE WHEN c.outcome IN ('monitor', 'already_monitored') THEN c.id END) AS confirmed,
                       count(DISTINCT CASE WHEN c.outcome IN ('no_risk', 'data_wrong') THEN c.id END) AS rejected
                FROM alerts a JOIN cases c ON c.id = a.case_id GROUP BY a.rule ORDER BY a.rule
                """).map { ($0["rule"] as String, $0["title"] as String, $0["cases"] as Int, $0["confirmed"] as Int, $0["rejected"] as Int) }
            let periods = try Row.fetchAll(db, sql: "SELECT period, count(*) AS raised, sum(status = 'closed') AS closed FROM cases GROUP BY period ORDER BY period")
                .map { ($0["period"] as String, $0["raised"] as Int, ($0["closed"] as Int?) ?? 0) }
            return Dashboard(byTownship: t, byRule: rules, byPeriod: periods)
        }
    }
}
