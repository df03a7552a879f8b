import Foundation
internal import GRDB

/// What storing a rule evaluation did.
public struct AlertTotals: Sendable {
    /// Alerts raised by the evaluation (new, changed or as they were).
    public var alerts = 0
    public var newAlerts = 0
    public var newCases = 0
    /// Alerts whose message or evidence changed, or that moved to another household's case.
    public var updated = 0
    /// Earlier alerts whose condition no longer holds (nobody had worked on them yet).
    public var withdrawn = 0
    /// Subjects evaluated.
    public var evaluated = 0
    public var byRule: [String: Int] = [:]
}

/// Stores a rule evaluation chunk by chunk inside one write transaction: alerts (one per rule,
/// subject and period), merged into one case per household, or per subject outside the roster.
/// Only the chunk at hand is in memory: existing alerts and cases are looked up per chunk
/// through their unique indexes.
public final class AlertWriter {
    let db: Database
    let now: String
    let deadline: String
    /// Run id → "source@mapping version", for each alert's provenance.
    let versions: [Int64: String]
    let insertCase: Statement
    let raiseSeverity: Statement
    let insertAlert: Statement
    let updateAlert: Statement
    private var townships = Set<String>()
    public private(set) var totals = AlertTotals()
    static let rank = ["high": 3, "medium": 2, "low": 1]

    init(db: Database, deadlineDays: Int) throws {
        self.db = db
        now = SQLiteStore.now()
        deadline = CivilDate.today.adding(days: deadlineDays).description
        var v: [Int64: String] = [:]
        for r in try Row.fetchAll(db, sql: "SELECT id, source, mapping_version FROM runs") {
            v[r["id"]] = (r["source"] as String) + "@" + (r["mapping_version"] as String)
        }
        versions = v
        insertCase = try db.makeStatement(sql: """
            INSERT INTO cases (case_key, period, household_id, subject_kind, subject_id, township_code, village_code, severity, opened_at, deadline)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        raiseSeverity = try db.makeStatement(sql: "UPDATE cases SET severity = ? WHERE id = ?")
        insertAlert = try db.makeStatement(sql: """
            INSERT INTO alerts (rule, title, severity, subject_kind, subject_id, period, household_id, township_code, village_code,
                                message, evidence, rule_version, mapping_versions, case_id, raised_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        updateAlert = try db.makeStatement(sql: "UPDATE alerts SET message = ?, evidence = ?, rule_version = ?, mapping_versions = ?, updated_at = ? WHERE id = ?")
        // Per-row change counters off for this transaction; moved once by `finish`.
        try db.execute(sql: "UPDATE store_versions SET n = 1 WHERE name = 'bulk'")
    }

    struct Existing { var id: Int64; var message: String; var evidence: UInt64; var caseID: Int64; var caseKey: String; var unworked: Bool }

    static func marks(_ n: Int) -> String { Array(repeating: "?", count: n).joined(separator: ",") }

    /// Stores one chunk of a rule's evaluation. With `withdraw`, an earlier alert of an evaluated
    /// subject that did not fire again is withdrawn while nobody has worked on its case (the
    /// roster arrived after the claims, a department corrected its file).
    public func save(_ chunk: RuleChunk, withdraw: Bool) throws {
        totals.alerts += chunk.alerts.count
        totals.evaluated += chunk.evaluated.count
        totals.byRule[chunk.rule, default: 0] += chunk.alerts.count
        let subjects = Array(Set(chunk.evaluated).union(chunk.alerts.map(\.subjectID)))
        // What the store holds for these subjects: one query per 500.
        var existing: [String: Existing] = [:]
        for start in stride(from: 0, to: subjects.count, by: 500) {
            let part = Array(subjects[start..<min(start + 500, subjects.count)])
            let rows = try Row.fetchCursor(db, sql: """
                SELECT a.id, a.subject_id, a.message, a.evidence, a.case_id, c.case_key,
                       c.status = 'open' AND NOT EXISTS (SELECT 1 FROM visits v WHERE v.case_id = c.id)
                                         AND NOT EXISTS (SELECT 1 FROM case_events e WHERE e.case_id = c.id) AS unworked
                FROM alerts a JOIN cases c ON c.id = a.case_id
                WHERE a.rule = ? AND a.subject_kind = ? AND a.subject_id IN (\(Self.marks(part.count))) AND a.period = ?
                """, arguments: StatementArguments([chunk.rule, chunk.subjectKind.rawValue] + part + [chunk.period]))
            while let r = try rows.next() {
                existing[r["subject_id"]] = Existing(id: r["id"], message: r["message"], evidence: Hashing.fnv1a((r["evidence"] as String).utf8),
                                                     caseID: r["case_id"], caseKey: r["case_key"], unworked: r["unworked"])
            }
        }
        if withdraw {
            let raised = Set(chunk.alerts.map(\.subjectID))
            for subject in chunk.evaluated where !raised.contains(subject) {
                guard let e = existing[subject], e.unworked else { continue }
                try db.execute(sql: "DELETE FROM alerts WHERE id = ?", arguments: [e.id])
                try db.execute(sql: "DELETE FROM cases WHERE id = ? AND NOT EXISTS (SELECT 1 FROM alerts WHERE case_id = ?)", arguments: [e.caseID, e.caseID])
                totals.withdrawn += 1
            }
        }
        // The cases these alerts belong to.
        var cases: [String: (id: Int64, severity: String)] = [:]
        let caseKeys = Array(Set(chunk.alerts.map(\.caseKey)))
        for start in stride(from: 0, to: caseKeys.count, by: 500) {
            let part = Array(caseKeys[start..<min(start + 500, caseKeys.count)])
            let rows = try Row.fetchCursor(db, sql: "SELECT id, case_key, severity FROM cases WHERE case_key IN (\(Self.marks(part.count))) AND period = ?",
                                           arguments: StatementArguments(part + [chunk.period]))
            while let r = try rows.next() { cases[r["case_key"]] = (r["id"], r["severity"]) }
        }
        func caseFor(_ a: Alert) throws -> Int64 {
            if let c = cases[a.caseKey] {
                if Self.rank[a.severity.rawValue]! > Self.rank[c.severity] ?? 0 {
                    try raiseSeverity.execute(arguments: [a.severity.rawValue, c.id])
                    cases[a.caseKey] = (c.id, a.severity.rawValue)
                }
                return c.id
            }
            try insertCase.execute(arguments: [a.caseKey, a.period, a.householdID, a.householdID != nil ? "household" : a.subjectKind.rawValue,
                                               a.householdID ?? a.subjectID, a.townshipCode, a.villageCode, a.severity.rawValue, now, deadline])
            totals.newCases += 1
            cases[a.caseKey] = (db.lastInsertedRowID, a.severity.rawValue)
            return db.lastInsertedRowID
        }
        for a in chunk.alerts {
            townships.insert(a.townshipCode ?? "")
            let evidence = Evidence.json(a.evidence)
            let evidenceHash = Hashing.fnv1a(evidence.utf8)
            let mappingVersions = Set(a.evidence.compactMap { versions[$0.run] }).sorted().joined(separator: ",")
            if let e = existing[a.subjectID] {
                if e.caseKey != a.caseKey, e.unworked {
                    // Newer data routes the subject elsewhere (the person turned out to be in the
                    // roster): move the alert to that household's case.
                    let target = try caseFor(a)
                    try db.execute(sql: """
                        UPDATE alerts SET case_id = ?, household_id = ?, township_code = ?, village_code = ?, message = ?, evidence = ?,
                               rule_version = ?, mapping_versions = ?, updated_at = ? WHERE id = ?
                        """, arguments: [target, a.householdID, a.townshipCode, a.villageCode, a.message, evidence, a.ruleVersion, mappingVersions, now, e.id])
                    try db.execute(sql: "DELETE FROM cases WHERE id = ? AND NOT EXISTS (SELECT 1 FROM alerts WHERE case_id = ?)", arguments: [e.caseID, e.caseID])
                    if db.changesCount > 0 { cases = cases.filter { $0.value.id != e.caseID } }
                    existing[a.subjectID] = Existing(id: e.id, message: a.message, evidence: evidenceHash, caseID: target, caseKey: a.caseKey, unworked: true)
                    totals.updated += 1
                } else if e.message != a.message || e.evidence != evidenceHash {
                    try updateAlert.execute(arguments: [a.message, evidence, a.ruleVersion, mappingVersions, now, e.id])
                    existing[a.subjectID]?.message = a.message
                    existing[a.subjectID]?.evidence = evidenceHash
                    totals.updated += 1
                }
                continue
            }
            let caseID = try caseFor(a)
            try insertAlert.execute(arguments: [a.rule, a.title, a.severity.rawValue, a.subjectKind.rawValue, a.subjectID, a.period, a.householdID,
                                                a.townshipCode, a.villageCode, a.message, evidence, a.ruleVersion, mappingVersions, caseID, now, now])
            existing[a.subjectID] = Existing(id: db.lastInsertedRowID, message: a.message, evidence: evidenceHash, caseID: caseID, caseKey: a.caseKey, unworked: true)
            totals.newAlerts += 1
        }
    }

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
    /// Runs `body` with a writer for one rule evaluation, in one transaction: all of it is
    /// stored, or (on an error) none of it. `evaluatedRun` is marked evaluated in the same transaction.
    public func storeAlerts(deadlineDays: Int = 15, evaluatedRun: Int64? = nil, _ body: (AlertWriter) throws -> Void) throws -> AlertTotals {
        try pool.write { db in
            if let evaluatedRun { try db.execute(sql: "UPDATE runs SET rules_evaluated = 1 WHERE id = ?", arguments: [evaluatedRun]) }
            let writer = try AlertWriter(db: db, deadlineDays: deadlineDays)
            try body(writer)
            try writer.finish()
            return writer.totals
        }
    }

    /// Stores a list of alerts (of any rules and periods) without withdrawing anything.
    /// Returns how many alerts and cases are new.
    @discardableResult
    public func saveAlerts(_ alerts: [Alert], deadlineDays: Int = 15) throws -> (newAlerts: Int, newCases: Int, updated: Int) {
        let totals = try storeAlerts(deadlineDays: deadlineDays) { writer in
            // One chunk per rule, subject kind and period, in the order given; a subject
            // listed twice goes to a later chunk (a chunk holds each subject once).
            var chunks: [RuleChunk] = []
            var subjectsIn: [Set<String>] = []
            var index: [String: [Int]] = [:]
            for a in alerts {
                let key = "\(a.rule)\u{1F}\(a.subjectKind.rawValue)\u{1F}\(a.period)"
                if let i = index[key]?.first(where: { !subjectsIn[$0].contains(a.subjectID) }) {
                    chunks[i].alerts.append(a)
                    subjectsIn[i].insert(a.subjectID)
                } else {
                    index[key, default: []].append(chunks.count)
                    chunks.append(RuleChunk(rule: a.rule, subjectKind: a.subjectKind, period: a.period, alerts: [a], evaluated: []))
                    subjectsIn.append([a.subjectID])
                }
            }
            for c in chunks { try writer.save(c, withdraw: false) }
        }
        return (totals.newAlerts, totals.newCases, totals.updated)
    }
}
