import Foundation
internal import GRDB
import Hub

/// The steps of storing a rule evaluation, on the writer's connection inside its transaction.
final class SQLiteCaseLedger: CaseLedger {
    let db: Database
    let insertCaseStatement: Statement
    let raiseSeverity: Statement
    let insertAlertStatement: Statement
    let updateAlertStatement: Statement
    private(set) var townships = Set<String>()

    init(db: Database) throws {
        self.db = db
        insertCaseStatement = try db.makeStatement(sql: """
            INSERT INTO cases (case_key, period, household_id, subject_kind, subject_id, township_code, village_code, severity, opened_at, deadline, subject_name)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        raiseSeverity = try db.makeStatement(sql: "UPDATE cases SET severity = ? WHERE id = ?")
        insertAlertStatement = try db.makeStatement(sql: """
            INSERT INTO alerts (rule, title, severity, subject_kind, subject_id, period, household_id, township_code, village_code,
                                message, evidence, rule_version, mapping_versions, case_id, raised_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        updateAlertStatement = try db.makeStatement(sql: "UPDATE alerts SET message = ?, evidence = ?, rule_version = ?, mapping_versions = ?, updated_at = ? WHERE id = ?")
        // Per-row change counters off for this transaction; moved once by `finish`.
        try db.execute(sql: "UPDATE store_versions SET n = 1 WHERE name = 'bulk'")
    }

    func mappingVersions() throws -> [Int64: String] {
        var v: [Int64: String] = [:]
        for r in try Row.fetchAll(db, sql: "SELECT id, source, mapping_version FROM runs") {
            v[r["id"]] = (r["source"] as String) + "@" + (r["mapping_version"] as String)
        }
        return v
    }

    func alerts(rule: String, subjectKind: Rule.Subject, period: String, subjects: [String]) throws -> [String: StoredAlert] {
        guard !subjects.isEmpty else { return [:] }
        var out: [String: StoredAlert] = [:]
        let rows = try Row.fetchCursor(db, sql: """
            SELECT a.id, a.subject_id, a.message, a.evidence, a.case_id, c.case_key,
                   c.status = 'open' AND NOT EXISTS (SELECT 1 FROM visits v WHERE v.case_id = c.id)
                                     AND NOT EXISTS (SELECT 1 FROM case_events e WHERE e.case_id = c.id) AS unworked
            FROM alerts a JOIN cases c ON c.id = a.case_id
            WHERE a.rule = ? AND a.subject_kind = ? AND a.subject_id IN (\(databaseQuestionMarks(count: subjects.count))) AND a.period = ?
            """, arguments: StatementArguments([rule, subjectKind.rawValue] + subjects + [period]))
        while let r = try rows.next() {
            out[r["subject_id"]] = StoredAlert(id: r["id"], message: r["message"], evidence: r["evidence"], caseID: r["case_id"],
                                               caseKey: r["case_key"], unworked: r["unworked"])
        }
        return out
    }

    func cases(keys: [String], period: String) throws -> [String: (id: Int64, severity: Rule.Severity)] {
        guard !keys.isEmpty else { return [:] }
        var out: [String: (id: Int64, severity: Rule.Severity)] = [:]
        let rows = try Row.fetchCursor(db, sql: "SELECT id, case_key, severity FROM cases WHERE case_key IN (\(databaseQuestionMarks(count: keys.count))) AND period = ?",
                                       arguments: StatementArguments(keys + [period]))
        while let r = try rows.next() { out[r["case_key"]] = (r["id"], Rule.Severity(rawValue: r["severity"]) ?? .low) }
        return out
    }

    func insertCase(_ c: NewCase) throws -> Int64 {
        try insertCaseStatement.execute(arguments: [c.key, c.period, c.householdID, c.subjectKind.rawValue, c.subjectID, c.townshipCode,
                                                    c.villageCode, c.severity.rawValue, c.openedAt, c.deadline.description, c.subjectName])
        return db.lastInsertedRowID
    }

    func setSeverity(_ severity: Rule.Severity, ofCase id: Int64) throws {
        try raiseSeverity.execute(arguments: [severity.rawValue, id])
    }

    func insertAlert(_ a: Alert, evidence: String, mappingVersions: String, caseID: Int64, at: String) throws -> Int64 {
        try insertAlertStatement.execute(arguments: [a.rule, a.title, a.severity.rawValue, a.subjectKind.rawValue, a.subjectID, a.period, a.householdID,
                                                     a.townshipCode, a.villageCode, a.message, evidence, a.ruleVersion, mappingVersions, caseID, at, at])
        return db.lastInsertedRowID
    }

    func updateAlert(_ id: Int64, message: String, evidence: String, ruleVersion: String, mappingVersions: String, at: String) throws {
        try updateAlertStatement.execute(arguments: [message, evidence, ruleVersion, mappingVersions, at, id])
    }

    func moveAlert(_ id: Int64, to caseID: Int64, as a: Alert, evidence: String, mappingVersions: String, at: String) throws {
        try db.execute(sql: """
            UPDATE alerts SET case_id = ?, household_id = ?, township_code = ?, village_code = ?, message = ?, evidence = ?,
                   rule_version = ?, mapping_versions = ?, updated_at = ? WHERE id = ?
            """, arguments: [caseID, a.householdID, a.townshipCode, a.villageCode, a.message, evidence, a.ruleVersion, mappingVersions, at, id])
    }

    func deleteAlert(_ id: Int64) throws {
        try db.execute(sql: "DELETE FROM alerts WHERE id = ?", arguments: [id])
    }

    func deleteCaseIfEmpty(_ id: Int64) throws -> Bool {
        try db.execute(sql: "DELETE FROM cases WHERE id = ? AND NOT EXISTS (SELECT 1 FROM alerts WHERE case_id = ?)", arguments: [id, id])
        return db.changesCount > 0
    }

    func touch(townships: Set<String>) { self.townships.formUnion(townships) }

    /// Moves the inboxes' change counters once for the whole evaluation.
    func finish() throws {
        // Every township's inbox may have changed (withdrawn, re-routed, new): move every
        // counter, creating those of townships that had none.
        try db.execute(sql: "UPDATE store_versions SET n = n + 1 WHERE name = 'cases' OR name GLOB 'cases:*'")
        for t in townships.sorted() {
            try db.execute(sql: "INSERT INTO store_versions (name, n) VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET n = n + 1", arguments: ["cases:" + t])
        }
        try db.execute(sql: "UPDATE store_versions SET n = 0 WHERE name = 'bulk'")
    }
}

extension SQLiteStore {
    public func writingCases<T>(evaluatedRun: Int64?, _ body: (any CaseLedger) throws -> T) throws -> T {
        try pool.write { db in
            if let evaluatedRun { try db.execute(sql: "UPDATE runs SET rules_evaluated = 1 WHERE id = ?", arguments: [evaluatedRun]) }
            let ledger = try SQLiteCaseLedger(db: db)
            let result = try body(ledger)
            try ledger.finish()
            return result
        }
    }

    public func closeCase(_ id: Int64, visit: VisitRecord, event: CaseEvent) throws {
        try pool.write { db in
            guard let c = try Row.fetchOne(db, sql: "SELECT status FROM cases WHERE id = ?", arguments: [id]) else { throw CaseChangeError.notFound }
            guard (c["status"] as String) == CaseStatus.open.rawValue else { throw CaseChangeError.notOpen }
            try db.execute(sql: """
                INSERT INTO visits (case_id, visited_on, visitors, findings, outcome, monitoring_type, reason, recorded_by, recorded_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [id, visit.visitedOn, visit.visitors, visit.findings, visit.outcome.rawValue, visit.monitoringType, visit.reason, event.username, event.at])
            try db.execute(sql: "UPDATE cases SET status = 'closed', outcome = ?, closed_at = ? WHERE id = ?", arguments: [visit.outcome.rawValue, event.at, id])
            try db.execute(sql: "INSERT INTO case_events (case_id, at, username, action, detail) VALUES (?, ?, ?, ?, ?)",
                           arguments: [id, event.at, event.username, event.action, event.detail])
        }
    }

    public func reopenCase(_ id: Int64, deadline: CivilDate, event: CaseEvent) throws {
        try pool.write { db in
            guard let c = try Row.fetchOne(db, sql: "SELECT status FROM cases WHERE id = ?", arguments: [id]) else { throw CaseChangeError.notFound }
            guard (c["status"] as String) == CaseStatus.closed.rawValue else { throw CaseChangeError.notClosed }
            try db.execute(sql: "UPDATE cases SET status = 'open', outcome = NULL, closed_at = NULL, deadline = ? WHERE id = ?",
                           arguments: [deadline.description, id])
            try db.execute(sql: "INSERT INTO case_events (case_id, at, username, action, detail) VALUES (?, ?, ?, ?, ?)",
                           arguments: [id, event.at, event.username, event.action, event.detail])
        }
    }

    public func assignCase(_ id: Int64, township: String, event: CaseEvent) throws {
        try pool.write { db in
            guard let c = try Row.fetchOne(db, sql: "SELECT status FROM cases WHERE id = ?", arguments: [id]) else { throw CaseChangeError.notFound }
            guard (c["status"] as String) == CaseStatus.open.rawValue else { throw CaseChangeError.notOpen }
            let keepVillage = "CASE WHEN substr(village_code, 1, 9) = ?1 THEN village_code END"
            try db.execute(sql: "UPDATE cases SET township_code = ?1, village_code = \(keepVillage) WHERE id = ?2", arguments: [township, id])
            try db.execute(sql: "UPDATE alerts SET township_code = ?1, village_code = \(keepVillage) WHERE case_id = ?2", arguments: [township, id])
            try db.execute(sql: "INSERT INTO case_events (case_id, at, username, action, detail) VALUES (?, ?, ?, ?, ?)",
                           arguments: [id, event.at, event.username, event.action, event.detail])
        }
    }

    public func addPhoto(_ p: NewPhoto) throws -> Int64 {
        try pool.write { db in
            guard try Row.fetchOne(db, sql: "SELECT 1 FROM cases WHERE id = ?", arguments: [p.caseID]) != nil else { throw CaseChangeError.notFound }
            try db.execute(sql: "INSERT INTO case_photos (case_id, content_type, bytes, note, kept_location, uploaded_by, uploaded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           arguments: [p.caseID, p.contentType, Data(p.bytes), p.note, p.keptLocation, p.uploadedBy, p.uploadedAt])
            return db.lastInsertedRowID
        }
    }

    static func photoInfo(_ r: Row) -> PhotoInfo {
        PhotoInfo(id: r["id"], caseID: r["case_id"], contentType: r["content_type"], size: r["size"], note: r["note"],
                  keptLocation: r["kept_location"], uploadedBy: r["uploaded_by"], uploadedAt: r["uploaded_at"])
    }

    public func photos(ofCase id: Int64) throws -> [PhotoInfo] {
        try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT id, case_id, content_type, length(bytes) AS size, note, kept_location, uploaded_by, uploaded_at
                FROM case_photos WHERE case_id = ? ORDER BY id
                """, arguments: [id]).map(Self.photoInfo)
        }
    }

    public func photo(_ id: Int64) throws -> (info: PhotoInfo, bytes: [UInt8])? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT *, length(bytes) AS size FROM case_photos WHERE id = ?", arguments: [id]).map {
                (Self.photoInfo($0), [UInt8]($0["bytes"] as Data))
            }
        }
    }

    public func forEachAlert(period: String, _ body: (AlertRow) throws -> Void) throws {
        try pool.read { db in
            let rows = try Row.fetchCursor(db, sql: """
                SELECT rule, title, severity, subject_kind, subject_id, household_id, township_code, village_code, case_id, message, raised_at
                FROM alerts WHERE period = ? ORDER BY case_id, rule
                """, arguments: [period])
            while let r = try rows.next() {
                try body(AlertRow(rule: r["rule"], title: r["title"], severity: r["severity"], subjectKind: r["subject_kind"], subjectID: r["subject_id"],
                                  householdID: r["household_id"], townshipCode: r["township_code"], villageCode: r["village_code"],
                                  caseID: r["case_id"], message: r["message"], raisedAt: r["raised_at"]))
            }
        }
    }

    public func alertCount(period: String) throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM alerts WHERE period = ?", arguments: [period]) ?? 0 }
    }
}
