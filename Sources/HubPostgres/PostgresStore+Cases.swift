import Foundation
import Hub
import NIOCore

/// The steps of storing a rule evaluation, on one connection inside its transaction.
///
/// New cases and alerts (a first evaluation of a large feed raises hundreds of thousands) are not
/// sent one statement each: their ids come from the tables' sequences a thousand at a time, the
/// rows wait in COPY buffers, and the buffers go to the server in one `COPY` each before any other
/// statement of the ledger — so every read and update still sees them.
final class PostgresCaseLedger: CaseLedger {
    let c: PGConnection
    private(set) var townships = Set<String>()
    private var caseRows = ByteBufferAllocator().buffer(capacity: 0)
    private var alertRows = ByteBufferAllocator().buffer(capacity: 0)
    private var caseIDs: [Int64] = []
    private var inserted = 0
    private var analysedAt = 0
    private var alertIDs: [Int64] = []
    static let caseColumns = ["id", "case_key", "period", "household_id", "subject_kind", "subject_id", "township_code", "village_code",
                              "severity", "opened_at", "deadline", "subject_name"]
    static let alertColumns = ["id", "rule", "title", "severity", "subject_kind", "subject_id", "period", "household_id", "township_code",
                               "village_code", "message", "evidence", "rule_version", "mapping_versions", "case_id", "raised_at", "updated_at"]

    init(_ c: PGConnection) throws {
        self.c = c
        // The per-row change counters are off for this transaction (the trigger reads this
        // setting); `finish` moves them once.
        try c.execute("SET LOCAL hub.bulk = '1'")
    }

    /// The next id of a table, reserved from its sequence a block at a time.
    private func nextID(_ table: String, _ pool: inout [Int64]) throws -> Int64 {
        if pool.isEmpty {
            pool = try c.query("SELECT nextval(pg_get_serial_sequence($1, 'id')) AS id FROM generate_series(1, 1000)", [.text(table)])
                .map { $0.int64("id")! }.reversed()
        }
        return pool.removeLast()
    }

    private static func row(_ values: [String?], into b: inout ByteBuffer) {
        for (i, v) in values.enumerated() {
            if i > 0 { b.writeInteger(UInt8(0x09)) }
            if let v { PGConnection.copyEscape(v, into: &b) } else { b.writeStaticString("\\N") }
        }
        b.writeInteger(UInt8(0x0A))
    }

    /// Sends the buffered new cases, then alerts (which refer to them).
    func flush() throws {
        if caseRows.readableBytes > 0 {
            try c.copy(into: "cases", columns: Self.caseColumns, caseRows)
            caseRows.clear()
        }
        if alertRows.readableBytes > 0 {
            try c.copy(into: "alerts", columns: Self.alertColumns, alertRows)
            alertRows.clear()
        }
        // Statistics that still describe the tables before this evaluation make the planner read
        // every alert of a rule for each lookup by subject: refreshed each time they double.
        if inserted >= 20_000 && inserted >= 2 * analysedAt {
            try c.execute("ANALYZE alerts")
            try c.execute("ANALYZE cases")
            analysedAt = inserted
        }
    }

    func mappingVersions() throws -> [Int64: String] {
        try flush()
        var v: [Int64: String] = [:]
        for r in try c.query("SELECT id, source, mapping_version FROM runs") { v[r.int64("id")!] = r.text("source") + "@" + r.text("mapping_version") }
        return v
    }

    func alerts(rule: String, subjectKind: Rule.Subject, period: String, subjects: [String]) throws -> [String: StoredAlert] {
        try flush()
        guard !subjects.isEmpty else { return [:] }
        var out: [String: StoredAlert] = [:]
        for r in try c.query("""
            SELECT a.id, a.subject_id, a.message, a.evidence, a.case_id, c.case_key,
                   c.status = 'open' AND NOT EXISTS (SELECT 1 FROM visits v WHERE v.case_id = c.id)
                                     AND NOT EXISTS (SELECT 1 FROM case_events e WHERE e.case_id = c.id) AS unworked
            FROM alerts a JOIN cases c ON c.id = a.case_id
            WHERE a.rule = $1 AND a.subject_kind = $2 AND a.subject_id = ANY($3) AND a.period = $4
            """, [.text(rule), .text(subjectKind.rawValue), .texts(subjects), .text(period)]) {
            out[r.text("subject_id")] = StoredAlert(id: r.int64("id")!, message: r.text("message"), evidence: r.text("evidence"),
                                                    caseID: r.int64("case_id")!, caseKey: r.text("case_key"), unworked: r.bool("unworked"))
        }
        return out
    }

    func cases(keys: [String], period: String) throws -> [String: (id: Int64, severity: Rule.Severity)] {
        try flush()
        guard !keys.isEmpty else { return [:] }
        var out: [String: (id: Int64, severity: Rule.Severity)] = [:]
        for r in try c.query("SELECT id, case_key, severity FROM cases WHERE case_key = ANY($1) AND period = $2", [.texts(keys), .text(period)]) {
            out[r.text("case_key")] = (r.int64("id")!, Rule.Severity(rawValue: r.text("severity")) ?? .low)
        }
        return out
    }

    func insertCase(_ n: NewCase) throws -> Int64 {
        let id = try nextID("cases", &caseIDs)
        Self.row([String(id), n.key, n.period, n.householdID, n.subjectKind.rawValue, n.subjectID, n.townshipCode, n.villageCode,
                  n.severity.rawValue, n.openedAt, n.deadline.description, n.subjectName], into: &caseRows)
        return id
    }

    func setSeverity(_ severity: Rule.Severity, ofCase id: Int64) throws {
        try flush()
        try c.execute("UPDATE cases SET severity = $1 WHERE id = $2", [.text(severity.rawValue), .int(id)])
    }

    func insertAlert(_ a: Alert, evidence: String, mappingVersions: String, caseID: Int64, at: String) throws -> Int64 {
        let id = try nextID("alerts", &alertIDs)
        inserted += 1
        Self.row([String(id), a.rule, a.title, a.severity.rawValue, a.subjectKind.rawValue, a.subjectID, a.period, a.householdID, a.townshipCode,
                  a.villageCode, a.message, evidence, a.ruleVersion, mappingVersions, String(caseID), at, at], into: &alertRows)
        if alertRows.readableBytes > 8 << 20 { try flush() }
        return id
    }

    func updateAlert(_ id: Int64, message: String, evidence: String, ruleVersion: String, mappingVersions: String, at: String) throws {
        try flush()
        try c.execute("UPDATE alerts SET message = $1, evidence = $2, rule_version = $3, mapping_versions = $4, updated_at = $5 WHERE id = $6",
                      [.text(message), .text(evidence), .text(ruleVersion), .text(mappingVersions), .text(at), .int(id)])
    }

    func moveAlert(_ id: Int64, to caseID: Int64, as a: Alert, evidence: String, mappingVersions: String, at: String) throws {
        try flush()
        try c.execute("""
            UPDATE alerts SET case_id = $1, household_id = $2, township_code = $3, village_code = $4, message = $5, evidence = $6,
                   rule_version = $7, mapping_versions = $8, updated_at = $9 WHERE id = $10
            """, [.int(caseID), .text(a.householdID), .text(a.townshipCode), .text(a.villageCode), .text(a.message), .text(evidence),
                  .text(a.ruleVersion), .text(mappingVersions), .text(at), .int(id)])
    }

    func deleteAlert(_ id: Int64) throws {
        try flush()
        try c.execute("DELETE FROM alerts WHERE id = $1", [.int(id)])
    }

    func deleteCaseIfEmpty(_ id: Int64) throws -> Bool {
        try flush()
        return try c.execute("DELETE FROM cases WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM alerts WHERE case_id = $1)", [.int(id)]) > 0
    }

    func touch(townships: Set<String>) { self.townships.formUnion(townships) }

    /// Moves every inbox's change counter once for the whole evaluation.
    func finish() throws {
        try flush()
        try c.execute("UPDATE store_versions SET n = n + 1 WHERE name = 'cases' OR name LIKE 'cases:%'")
        if !townships.isEmpty {
            try c.execute("""
                INSERT INTO store_versions (name, n) SELECT 'cases:' || t, 1 FROM unnest($1::text[]) AS t
                ON CONFLICT (name) DO UPDATE SET n = store_versions.n + 1
                """, [.texts(townships.sorted())])
        }
        try c.execute("SET LOCAL hub.bulk = '0'")
    }
}

extension PostgresStore {
    public func writingCases<T>(evaluatedRun: Int64?, _ body: (any CaseLedger) throws -> T) throws -> T {
        try pool.write { c in
            // One evaluation at a time writes cases (workers evaluating different counties wait
            // here briefly): merging reads the cases it then writes.
            try c.execute("SELECT pg_advisory_xact_lock(4801003)")
            // Every statement of the ledger looks rows up by key; the alerts and cases it inserts
            // are not in the planner's statistics until the next ANALYZE, and a first evaluation
            // of a large feed planned on them read every alert of the rule per lookup (25 ms each),
            // so `flush` also refreshes the statistics as the tables grow.
            try c.execute("SET LOCAL enable_seqscan = off")
            try c.execute("SET LOCAL enable_hashjoin = off")
            try c.execute("SET LOCAL enable_mergejoin = off")
            if let evaluatedRun { try c.execute("UPDATE runs SET rules_evaluated = true WHERE id = $1", [.int(evaluatedRun)]) }
            let ledger = try PostgresCaseLedger(c)
            let result = try body(ledger)
            try ledger.finish()
            return result
        }
    }

    private func event(_ c: PGConnection, _ id: Int64, _ e: CaseEvent) throws {
        try c.execute("INSERT INTO case_events (case_id, at, username, action, detail) VALUES ($1, $2, $3, $4, $5)",
                      [.int(id), .text(e.at), .text(e.username), .text(e.action), .text(e.detail)])
    }

    /// The case's status, locked for this transaction (two verifiers closing it at once: one waits, then finds it closed).
    private func lockedStatus(_ c: PGConnection, _ id: Int64) throws -> String {
        guard let r = try c.one("SELECT status FROM cases WHERE id = $1 FOR UPDATE", [.int(id)]) else { throw CaseChangeError.notFound }
        return r.text("status")
    }

    public func closeCase(_ id: Int64, visit: VisitRecord, event e: CaseEvent) throws {
        try pool.write { c in
            guard try lockedStatus(c, id) == CaseStatus.open.rawValue else { throw CaseChangeError.notOpen }
            try c.execute("""
                INSERT INTO visits (case_id, visited_on, visitors, findings, outcome, monitoring_type, reason, recorded_by, recorded_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                """, [.int(id), .text(visit.visitedOn), .text(visit.visitors), .text(visit.findings), .text(visit.outcome.rawValue),
                      .text(visit.monitoringType), .text(visit.reason), .text(e.username), .text(e.at)])
            try c.execute("UPDATE cases SET status = 'closed', outcome = $1, closed_at = $2 WHERE id = $3", [.text(visit.outcome.rawValue), .text(e.at), .int(id)])
            try event(c, id, e)
        }
    }

    public func reopenCase(_ id: Int64, deadline: CivilDate, event e: CaseEvent) throws {
        try pool.write { c in
            guard try lockedStatus(c, id) == CaseStatus.closed.rawValue else { throw CaseChangeError.notClosed }
            try c.execute("UPDATE cases SET status = 'open', outcome = NULL, closed_at = NULL, deadline = $1 WHERE id = $2", [.text(deadline.description), .int(id)])
            try event(c, id, e)
        }
    }

    public func assignCase(_ id: Int64, township: String, event e: CaseEvent) throws {
        try pool.write { c in
            guard try lockedStatus(c, id) == CaseStatus.open.rawValue else { throw CaseChangeError.notOpen }
            let keepVillage = "CASE WHEN substr(village_code, 1, 9) = $1 THEN village_code END"
            try c.execute("UPDATE cases SET township_code = $1, village_code = \(keepVillage) WHERE id = $2", [.text(township), .int(id)])
            try c.execute("UPDATE alerts SET township_code = $1, village_code = \(keepVillage) WHERE case_id = $2", [.text(township), .int(id)])
            try event(c, id, e)
        }
    }

    public func addPhoto(_ p: NewPhoto) throws -> Int64 {
        try pool.write { c in
            guard try c.one("SELECT 1 AS x FROM cases WHERE id = $1", [.int(p.caseID)]) != nil else { throw CaseChangeError.notFound }
            return try c.one("""
                INSERT INTO case_photos (case_id, content_type, bytes, note, kept_location, uploaded_by, uploaded_at)
                VALUES ($1, $2, $3, $4, $5 <> 0, $6, $7) RETURNING id
                """, [.int(p.caseID), .text(p.contentType), .bytes(p.bytes), .text(p.note), .int(p.keptLocation ? 1 : 0),
                      .text(p.uploadedBy), .text(p.uploadedAt)])!.int64("id")!
        }
    }

    static func photoInfo(_ r: PGRow) -> PhotoInfo {
        PhotoInfo(id: r.int64("id")!, caseID: r.int64("case_id")!, contentType: r.text("content_type"), size: r.int("size"), note: r.text("note"),
                  keptLocation: r.bool("kept_location"), uploadedBy: r.text("uploaded_by"), uploadedAt: r.text("uploaded_at"))
    }

    public func photos(ofCase id: Int64) throws -> [PhotoInfo] {
        try pool.read { c in
            try c.query("""
                SELECT id, case_id, content_type, length(bytes) AS size, note, kept_location, uploaded_by, uploaded_at
                FROM case_photos WHERE case_id = $1 ORDER BY id
                """, [.int(id)]).map(Self.photoInfo)
        }
    }

    public func photo(_ id: Int64) throws -> (info: PhotoInfo, bytes: [UInt8])? {
        try pool.read { c in
            try c.one("SELECT *, length(bytes) AS size FROM case_photos WHERE id = $1", [.int(id)]).map { (Self.photoInfo($0), $0.bytes("bytes") ?? []) }
        }
    }

    public func forEachAlert(period: String, _ body: (AlertRow) throws -> Void) throws {
        try pool.read { c in
            try c.forEach("""
                SELECT rule, title, severity, subject_kind, subject_id, household_id, township_code, village_code, case_id, message, raised_at
                FROM alerts WHERE period = $1 ORDER BY case_id, rule
                """, [.text(period)]) { r in
                try body(AlertRow(rule: r.text("rule"), title: r.text("title"), severity: r.text("severity"), subjectKind: r.text("subject_kind"),
                                  subjectID: r.text("subject_id"), householdID: r.string("household_id"), townshipCode: r.string("township_code"),
                                  villageCode: r.string("village_code"), caseID: r.int64("case_id")!, message: r.text("message"), raisedAt: r.text("raised_at")))
                return true
            }
        }
    }

    public func alertCount(period: String) throws -> Int {
        try pool.read { c in try c.one("SELECT count(*) AS n FROM alerts WHERE period = $1", [.text(period)])!.int("n") }
    }
}
