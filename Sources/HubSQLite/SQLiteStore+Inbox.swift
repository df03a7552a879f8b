import Foundation
internal import GRDB
import Hub
import Synchronization

extension SQLiteStore {
    /// A case's columns with its rules, titles and name: a household case's name is its head's
    /// (户主, else its first member) as the roster holds it now, when the roster has names.
    func caseColumns(roster: Bool) -> String {
        let head = roster
            ? "(SELECT p.name FROM rec_person p WHERE p.household_id = c.household_id ORDER BY p.relation = '户主' DESC, p._id LIMIT 1)"
            : "NULL"
        return """
            c.*, (SELECT group_concat(rule, ',') FROM (SELECT DISTINCT rule FROM alerts WHERE case_id = c.id ORDER BY rule)) AS rules,
            (SELECT group_concat(title, '|') FROM (SELECT DISTINCT title FROM alerts WHERE case_id = c.id ORDER BY rule)) AS titles,
            coalesce(c.subject_name, CASE WHEN c.household_id IS NOT NULL THEN \(head) END) AS display_name
            """
    }

    /// Whether the roster's person table holds names and relations (it exists once a roster is pulled).
    func rosterHasNames() throws -> Bool {
        try pool.read { db in
            guard try db.tableExists("rec_person") else { return false }
            let columns = Set(try db.columns(in: "rec_person").map(\.name))
            return columns.isSuperset(of: ["name", "relation", "household_id", "id_number"])
        }
    }

    /// Open cases by deadline, the more severe first on the same day.
    static let caseOrder = "c.deadline, CASE c.severity WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END, c.id"

    /// A search term as the inbox takes it: an ID number or 户编号 (whole, or at least its last 4
    /// characters), else a name (any part of it); `%` and `_` match themselves.
    static func searchCondition(_ term: String, roster: Bool) -> (sql: String, args: [any DatabaseValueConvertible])? {
        let q = term.trimmingCharacters(in: .whitespaces).uppercased()
        guard !q.isEmpty else { return nil }
        let escaped = q.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_")
        if q.count >= 4, q.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "X") }) {
            var sql = " AND (c.subject_id = ? OR c.household_id = ? OR c.subject_id LIKE ? ESCAPE '\\' OR c.household_id LIKE ? ESCAPE '\\'"
            var args: [any DatabaseValueConvertible] = [q, q, "%" + escaped, "%" + escaped]
            if roster {
                sql += " OR c.household_id IN (SELECT household_id FROM rec_person WHERE id_number = ? OR id_number LIKE ? ESCAPE '\\')"
                args += [q, "%" + escaped]
            }
            return (sql + ")", args)
        }
        var sql = " AND (c.subject_name LIKE ? ESCAPE '\\'"
        var args: [any DatabaseValueConvertible] = ["%" + escaped + "%"]
        if roster {
            sql += " OR c.household_id IN (SELECT household_id FROM rec_person WHERE name LIKE ? ESCAPE '\\')"
            args.append("%" + escaped + "%")
        }
        return (sql + ")", args)
    }

    /// The filter's conditions over `cases c` in the user's scope, or nil when the user sees no case.
    func caseConditions(for user: User, filter: CaseFilter, today: CivilDate, roster: Bool) -> (sql: String, args: [any DatabaseValueConvertible])? {
        var conditions = ""
        var args: [any DatabaseValueConvertible] = []
        switch user.caseScope {
        case .nothing: return nil
        case .everything: break
        case .area(let area): conditions += " AND " + area.condition("c.township_code") { args.append($0); return "?" }
        }
        if let t = filter.township, !t.isEmpty { conditions += " AND c.township_code = ?"; args.append(t) }
        if let s = filter.search, let (sql, a) = Self.searchCondition(s, roster: roster) { conditions += sql; args += a }
        if filter.awaitingDispatch { conditions += " AND coalesce(c.township_code, '') = ''" }
        if let r = filter.rule, !r.isEmpty { conditions += " AND EXISTS (SELECT 1 FROM alerts a WHERE a.case_id = c.id AND a.rule = ?)"; args.append(r) }
        if let v = filter.village, !v.isEmpty { conditions += " AND c.village_code = ?"; args.append(v) }
        if let s = filter.status { conditions += " AND c.status = ?"; args.append(s.rawValue) }
        if let s = filter.severity { conditions += " AND c.severity = ?"; args.append(s.rawValue) }
        if let p = filter.period, !p.isEmpty { conditions += " AND c.period = ?"; args.append(p) }
        if filter.overdueOnly { conditions += " AND c.status = 'open' AND c.deadline < ?"; args.append(today.description) }
        return (conditions, args)
    }

    public func caseCount(for user: User, filter: CaseFilter = CaseFilter(), today: CivilDate = .today) throws -> Int {
        guard let (conditions, args) = caseConditions(for: user, filter: filter, today: today, roster: try rosterHasNames()) else { return 0 }
        return try pool.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM cases c WHERE 1 = 1\(conditions)", arguments: StatementArguments(args)) ?? 0
        }
    }

    public func cases(for user: User, filter: CaseFilter = CaseFilter(), today: CivilDate = .today) throws -> [CaseSummary] {
        let roster = try rosterHasNames()
        guard let (conditions, args) = caseConditions(for: user, filter: filter, today: today, roster: roster) else { return [] }
        let limit = max(0, min(filter.limit, CaseFilter.maxLimit)), offset = max(0, filter.offset)
        guard limit > 0 else { return [] }
        let names = try regionNames()
        let columns = caseColumns(roster: roster)
        return try pool.read { db in
            func fetch(_ more: String, limit: Int, offset: Int) throws -> [CaseSummary] {
                try Row.fetchAll(db, sql: "SELECT \(columns) FROM cases c WHERE 1 = 1\(conditions)\(more) ORDER BY \(Self.caseOrder) LIMIT ? OFFSET ?",
                                 arguments: StatementArguments(args + [limit, offset])).map { Self.summary($0, names) }
            }
            // Open cases first, then the others, each by deadline: two queries that each walk
            // the (township, status, deadline) index instead of sorting the whole scope.
            var out = try fetch(" AND c.status = 'open'", limit: limit, offset: offset)
            if out.count < limit {
                let open = try Int.fetchOne(db, sql: "SELECT count(*) FROM cases c WHERE 1 = 1\(conditions) AND c.status = 'open'", arguments: StatementArguments(args)) ?? 0
                out += try fetch(" AND c.status <> 'open'", limit: limit - out.count, offset: max(0, offset - open))
            }
            return out
        }
    }

    /// Counts and filter choices over the user's whole scope, computed in SQL (a county's
    /// scope can hold hundreds of thousands of cases).
    public func inboxOverview(for user: User, today: CivilDate = .today) throws -> InboxOverview {
        var scope = ""
        var args: [any DatabaseValueConvertible] = []
        switch user.caseScope {
        case .nothing: return InboxOverview()
        case .everything: break
        case .area(let area): scope = " WHERE " + area.condition("township_code") { args.append($0); return "?" }
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

    static func summary(_ r: Row, _ names: [String: String]) -> CaseSummary {
        let t: String? = r["township_code"], v: String? = r["village_code"]
        return CaseSummary(id: r["id"], period: r["period"], householdID: r["household_id"],
                           subjectKind: Rule.Subject(rawValue: r["subject_kind"]) ?? .household, subjectID: r["subject_id"],
                           townshipCode: t, villageCode: v, township: t.flatMap { names[$0] }, village: v.flatMap { names[$0] },
                           severity: Rule.Severity(rawValue: r["severity"]) ?? .low, status: CaseStatus(rawValue: r["status"]) ?? .open,
                           deadline: r["deadline"], openedAt: r["opened_at"],
                           outcome: r["outcome"], closedAt: r["closed_at"],
                           rules: ((r["rules"] as String?) ?? "").split(separator: ",").map(String.init),
                           titles: ((r["titles"] as String?) ?? "").split(separator: "|").map(String.init), subjectName: r["display_name"])
    }

    /// Township and village names by code, from the roster (read again when a pull succeeds).
    public func regionNames() throws -> [String: String] {
        let version = try rosterVersion()
        if let cached = regionNameCache.withLock({ $0 }), cached.version == version { return cached.names }
        let names = try pool.read { db -> [String: String] in
                guard try db.tableExists("rec_household") else { return [:] }
                var out: [String: String] = [:]
                for r in try Row.fetchAll(db, sql: "SELECT DISTINCT village_code, township, village FROM rec_household WHERE village_code IS NOT NULL") {
                    guard let code: String = r["village_code"] else { continue }
                    if let v: String = r["village"] { out[code] = v }
                    if let t: String = r["township"], code.count >= 9 { out[String(code.prefix(9))] = t }
                }
                return out
        }
        regionNameCache.withLock { $0 = (version, names) }
        return names
    }

    /// A case with everything the case page shows, or nil when it does not exist.
    public func caseDetail(_ id: Int64) throws -> CaseDetail? {
        let names = try regionNames()
        let columns = caseColumns(roster: try rosterHasNames())
        return try pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT \(columns) FROM cases c WHERE c.id = ?", arguments: [id]) else { return nil }
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
                CaseDetail.AlertInfo(rule: a["rule"], title: a["title"], severity: Rule.Severity(rawValue: a["severity"]) ?? .low, message: a["message"],
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

    public func latestVisits(of caseIDs: [Int64]) throws -> [Int64: CaseDetail.Visit] {
        guard !caseIDs.isEmpty else { return [:] }
        return try pool.read { db in
            var out: [Int64: CaseDetail.Visit] = [:]
            for v in try Row.fetchAll(db, sql: """
                SELECT * FROM visits WHERE id IN (SELECT max(id) FROM visits WHERE case_id IN (\(databaseQuestionMarks(count: caseIDs.count))) GROUP BY case_id)
                """, arguments: StatementArguments(caseIDs)) {
                out[v["case_id"]] = CaseDetail.Visit(visitedOn: v["visited_on"], visitors: v["visitors"], findings: v["findings"],
                                                     outcome: VisitOutcome(rawValue: v["outcome"]) ?? .unverifiable, monitoringType: v["monitoring_type"],
                                                     reason: v["reason"], recordedBy: v["recorded_by"], recordedAt: v["recorded_at"])
            }
            return out
        }
    }

    public func caseCounts(openedSince: String, today: CivilDate) throws -> [TownshipCounts] {
        let names = try regionNames()
        return try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT coalesce(township_code, '') AS code, sum(opened_at >= ?) AS new, sum(status = 'open') AS open,
                       sum(status = 'open' AND deadline < ?) AS overdue
                FROM cases GROUP BY 1 ORDER BY 1
                """, arguments: [openedSince, today.description]).map { r in
                let code: String = r["code"]
                return TownshipCounts(code: code, name: names[code] ?? (code.isEmpty ? CaseStatus.awaitingDispatchName : code),
                                      new: r["new"] ?? 0, open: r["open"] ?? 0, overdue: r["overdue"] ?? 0)
            }
        }
    }

    public func dashboard(for user: User, today: CivilDate = .today) throws -> Dashboard {
        var scope = "", args: [String] = []
        switch user.caseScope {
        case .nothing: return Dashboard(byTownship: [], byRule: [], byPeriod: [])
        case .everything: break
        case .area(let area): scope = " WHERE " + area.condition("c.township_code") { args.append($0); return "?" }
        }
        let names = try regionNames()
        return try pool.read { db in
            let t = try Row.fetchAll(db, sql: """
                SELECT coalesce(township_code, '') AS code,
                       sum(status = 'open') AS open, sum(status = 'open' AND deadline < ?) AS overdue,
                       sum(status = 'closed') AS closed, sum(outcome = 'monitor') AS monitored
                FROM cases c\(scope) GROUP BY coalesce(township_code, '') ORDER BY 1
                """, arguments: StatementArguments([today.description] + args)).map { r -> (code: String, name: String, open: Int, overdue: Int, closed: Int, monitored: Int) in
                let code: String = r["code"] ?? ""
                return (code, names[code] ?? (code.isEmpty ? CaseStatus.awaitingDispatchName : code), r["open"] ?? 0, r["overdue"] ?? 0, r["closed"] ?? 0, r["monitored"] ?? 0)
            }
            let rules = try Row.fetchAll(db, sql: """
                SELECT a.rule, a.title, count(DISTINCT a.case_id) AS cases,
                       count(DISTINCT CASE WHEN c.outcome IN ('monitor', 'already_monitored', 'confirmed') THEN c.id END) AS confirmed,
                       count(DISTINCT CASE WHEN c.outcome IN ('no_risk', 'data_wrong') THEN c.id END) AS rejected
                FROM alerts a JOIN cases c ON c.id = a.case_id\(scope) GROUP BY a.rule ORDER BY a.rule
                """, arguments: StatementArguments(args)).map { ($0["rule"] as String, $0["title"] as String, $0["cases"] as Int, $0["confirmed"] as Int, $0["rejected"] as Int) }
            let periods = try Row.fetchAll(db, sql: "SELECT period, count(*) AS raised, sum(status = 'closed') AS closed FROM cases c\(scope) GROUP BY period ORDER BY period",
                                           arguments: StatementArguments(args))
                .map { ($0["period"] as String, $0["raised"] as Int, ($0["closed"] as Int?) ?? 0) }
            return Dashboard(byTownship: t, byRule: rules, byPeriod: periods)
        }
    }
}
