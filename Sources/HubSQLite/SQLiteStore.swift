import Foundation
internal import GRDB
import Hub
import Synchronization

/// The embedded store: one SQLite file in WAL mode, accessed through GRDB.
///
/// Core tables (`runs`, `quarantine`, `record_changes`) come from migrations; each record type
/// gets a table `rec_TYPE` created and extended from its declaration. Every record carries its
/// provenance: `_source`, `_run_id` (last writer), `_first_run_id`, `_document`, `_row`,
/// `_row_hash` (the raw row) and `_hash` (the mapped content, to tell an update from a repeat).
/// Money columns hold 分 (1/100 yuan) as integers; dates are `yyyy-MM-dd` text.
///
/// Sendable: GRDB's `DatabasePool` serialises writes and gives each read its own connection;
/// the only other state, the region names, sits behind a `Mutex`.
public final class SQLiteStore: HubStore, @unchecked Sendable {
    let pool: DatabasePool
    public let path: String
    /// Township and village names read from the roster, with the `rosterVersion` they were read at.
    let regionNameCache = Mutex<(version: Int, names: [String: String])?>(nil)

    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    public init(path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        var config = Configuration()
        config.busyMode = .timeout(30)
        config.prepareDatabase { db in
            // 8 KB pages for a new store (an existing one keeps its size): shallower B-trees
            // and less per-page work for tables of millions of records.
            try db.execute(sql: "PRAGMA page_size = 8192")
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // Up to 16 MB of page cache per connection (SQLite's default is 2 MB): a large pull or
            // rule evaluation then stops re-writing spilled index pages to the WAL (measured for
            // a million rows: 4.5 GB → 0.5 GB of writes) while a pull stays under 100 MB.
            try db.execute(sql: "PRAGMA cache_size = -16384")
        }
        // Two processes opening a new store at once (`hubd serve` and `hubd users add`) may both
        // decide a migration is due, or both switch the new file to WAL (SQLite answers "database
        // is locked" at once for that, without waiting); the one that loses looks again.
        var attempt = 0
        var opened: DatabasePool? = nil
        while true {
            do {
                let p = try opened ?? DatabasePool(path: path, configuration: config)
                opened = p
                try Self.migrator.migrate(p)
                break
            } catch {
                attempt += 1
                if attempt >= 10 { throw error }
                Thread.sleep(forTimeInterval: 0.05 * Double(attempt))
            }
        }
        pool = opened!
        self.path = path
    }

    /// What one user's cached inbox is keyed by, read in one go: the change counter of their
    /// scope combined with `rosterVersion` (names come from the roster). The counters
    /// (`store_versions`: one for the store, one per township) move with every change to cases
    /// or alerts, from this process or another one on the same file — `saveAlerts` moves them
    /// when it stores a rule evaluation, triggers when a case is updated or deleted (a visit, a
    /// reopening, an edit by hand). A township verifier's only moves with their townships; an
    /// audit entry or a pull that raises nothing moves none.
    public func inboxVersion(for user: User) throws -> Int {
        guard user.role.seesCases else { return 0 }
        return try pool.read { db in
            let roster = try Int.fetchOne(db.cachedStatement(sql: "SELECT coalesce(max(id), 0) FROM runs WHERE status = 'succeeded'")) ?? 0
            let cases: Int
            switch user.caseScope {
            case .nothing: cases = 0
            case .everything:
                cases = try Int.fetchOne(db.cachedStatement(sql: "SELECT n FROM store_versions WHERE name = 'cases'")) ?? 0
            case .area(let area):
                var args: [String] = []
                let inArea = area.condition("substr(name, 7)") { args.append($0); return "?" }
                cases = try Int.fetchOne(db.cachedStatement(sql: "SELECT coalesce(sum(n), 0) FROM store_versions WHERE name LIKE 'cases:%' AND \(inArea)"),
                                         arguments: StatementArguments(args)) ?? 0
            }
            return cases &* 1_000_003 &+ roster
        }
    }

    /// Moves on with every successful pull: what names from the roster are cached by.
    public func rosterVersion() throws -> Int {
        try pool.read { db in try Int.fetchOne(db.cachedStatement(sql: "SELECT coalesce(max(id), 0) FROM runs WHERE status = 'succeeded'")) ?? 0 }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1-runs-quarantine-changes") { db in
            try db.execute(sql: """
                CREATE TABLE runs (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    source TEXT NOT NULL,
                    period TEXT NOT NULL,
                    status TEXT NOT NULL,
                    started_at TEXT NOT NULL,
                    finished_at TEXT,
                    mapping_version TEXT NOT NULL,
                    rows_read INTEGER NOT NULL DEFAULT 0,
                    inserted INTEGER NOT NULL DEFAULT 0,
                    updated INTEGER NOT NULL DEFAULT 0,
                    unchanged INTEGER NOT NULL DEFAULT 0,
                    quarantined INTEGER NOT NULL DEFAULT 0,
                    skipped INTEGER NOT NULL DEFAULT 0,
                    documents INTEGER NOT NULL DEFAULT 0,
                    error TEXT
                );
                CREATE INDEX runs_source ON runs(source, period);
                CREATE TABLE quarantine (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    source TEXT NOT NULL,
                    period TEXT NOT NULL,
                    document TEXT NOT NULL,
                    row_number INTEGER NOT NULL,
                    raw TEXT NOT NULL,
                    reasons TEXT NOT NULL,
                    row_hash TEXT NOT NULL,
                    first_run_id INTEGER NOT NULL REFERENCES runs(id),
                    last_run_id INTEGER NOT NULL REFERENCES runs(id),
                    UNIQUE(source, period, row_hash, reasons)
                );
                CREATE TABLE quarantine_runs (
                    quarantine_id INTEGER NOT NULL REFERENCES quarantine(id),
                    run_id INTEGER NOT NULL REFERENCES runs(id),
                    PRIMARY KEY (run_id, quarantine_id)
                ) WITHOUT ROWID;
                CREATE TABLE record_changes (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    run_id INTEGER NOT NULL REFERENCES runs(id),
                    record_type TEXT NOT NULL,
                    source TEXT NOT NULL,
                    record_key TEXT NOT NULL,
                    field TEXT NOT NULL,
                    before TEXT,
                    after TEXT
                );
                CREATE INDEX record_changes_key ON record_changes(record_type, source, record_key);
                """)
        }
        m.registerMigration("v2-alerts-cases") { db in
            try db.execute(sql: """
                CREATE TABLE cases (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    case_key TEXT NOT NULL,
                    period TEXT NOT NULL,
                    household_id TEXT,
                    subject_kind TEXT NOT NULL,
                    subject_id TEXT NOT NULL,
                    township_code TEXT,
                    village_code TEXT,
                    severity TEXT NOT NULL,
                    status TEXT NOT NULL DEFAULT 'open',
                    opened_at TEXT NOT NULL,
                    deadline TEXT NOT NULL,
                    UNIQUE(case_key, period)
                );
                CREATE INDEX cases_township ON cases(township_code, status, deadline);
                CREATE TABLE alerts (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    rule TEXT NOT NULL,
                    title TEXT NOT NULL,
                    severity TEXT NOT NULL,
                    subject_kind TEXT NOT NULL,
                    subject_id TEXT NOT NULL,
                    period TEXT NOT NULL,
                    household_id TEXT,
                    township_code TEXT,
                    village_code TEXT,
                    message TEXT NOT NULL,
                    evidence TEXT NOT NULL,
                    rule_version TEXT NOT NULL,
                    mapping_versions TEXT NOT NULL,
                    case_id INTEGER NOT NULL REFERENCES cases(id),
                    raised_at TEXT NOT NULL,
                    updated_at TEXT NOT NULL,
                    UNIQUE(rule, subject_kind, subject_id, period)
                );
                CREATE INDEX alerts_case ON alerts(case_id);
                """)
        }
        m.registerMigration("v3-access-inbox") { db in
            try db.execute(sql: """
                CREATE TABLE users (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    username TEXT NOT NULL UNIQUE,
                    display_name TEXT NOT NULL,
                    role TEXT NOT NULL,
                    townships TEXT NOT NULL DEFAULT '',
                    password_hash TEXT NOT NULL,
                    failed_logins INTEGER NOT NULL DEFAULT 0,
                    locked_until TEXT,
                    active INTEGER NOT NULL DEFAULT 1,
                    created_at TEXT NOT NULL
                );
                CREATE TABLE sessions (
                    token_hash TEXT PRIMARY KEY,
                    user_id INTEGER NOT NULL REFERENCES users(id),
                    csrf TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    expires_at TEXT NOT NULL
                );
                CREATE TABLE audit_log (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    at TEXT NOT NULL,
                    username TEXT NOT NULL,
                    action TEXT NOT NULL,
                    target TEXT NOT NULL,
                    detail TEXT NOT NULL,
                    address TEXT NOT NULL,
                    prev_hash TEXT NOT NULL,
                    hash TEXT NOT NULL
                );
                CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
                CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
                CREATE TABLE visits (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    case_id INTEGER NOT NULL REFERENCES cases(id),
                    visited_on TEXT NOT NULL,
                    visitors TEXT NOT NULL,
                    findings TEXT NOT NULL,
                    outcome TEXT NOT NULL,
                    monitoring_type TEXT,
                    reason TEXT,
                    recorded_by TEXT NOT NULL,
                    recorded_at TEXT NOT NULL
                );
                CREATE TABLE case_events (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    case_id INTEGER NOT NULL REFERENCES cases(id),
                    at TEXT NOT NULL,
                    username TEXT NOT NULL,
                    action TEXT NOT NULL,
                    detail TEXT NOT NULL
                );
                ALTER TABLE cases ADD COLUMN outcome TEXT;
                ALTER TABLE cases ADD COLUMN closed_at TEXT;
                """)
        }
        m.registerMigration("v4-feed-alerts") { db in
            try db.execute(sql: """
                CREATE TABLE feed_alerts (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    source TEXT NOT NULL,
                    period TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    message TEXT NOT NULL,
                    raised_at TEXT NOT NULL,
                    UNIQUE(source, period, kind)
                );
                """)
        }
        m.registerMigration("v5-runs-rules-evaluated") { db in
            // Set in the same transaction that stores the run's alerts, so a crash between a pull
            // and its rule evaluation is noticed and the evaluation done at the next start.
            try db.execute(sql: "ALTER TABLE runs ADD COLUMN rules_evaluated INTEGER NOT NULL DEFAULT 0")
        }
        m.registerMigration("v6-inbox-indexes") { db in
            // The inbox's rule filter lists the rules with alerts in the user's townships.
            try db.execute(sql: "CREATE INDEX alerts_township_rule ON alerts(township_code, rule, title)")
            // …and the villages with cases there.
            try db.execute(sql: "CREATE INDEX cases_township_village ON cases(township_code, village_code)")
            // Counters that every change to cases or alerts moves on: one for the whole store and
            // one per township, so a visit recorded in one township leaves the other townships'
            // cached inboxes valid.
            try db.execute(sql: "CREATE TABLE store_versions (name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID")
            // 'bulk' is 1 only inside a transaction that stores a rule evaluation's alerts, which
            // moves the counters itself once at the end instead of once per row (other
            // connections never see it set).
            try db.execute(sql: "INSERT INTO store_versions (name, n) VALUES ('cases', 0), ('bulk', 0)")
            func bump(_ row: String) -> String {
                "INSERT INTO store_versions (name, n) VALUES ('cases:' || coalesce(\(row).township_code, ''), 1) ON CONFLICT(name) DO UPDATE SET n = n + 1;"
            }
            // Alerts and cases are only inserted by `saveAlerts`, which moves the counters itself;
            // a case changes afterwards by a visit, a reopening or by hand — those the triggers see.
            for table in ["cases"] {
                for (event, rows) in [("UPDATE", ["OLD", "NEW"]), ("DELETE", ["OLD"])] {
                    try db.execute(sql: """
                        CREATE TRIGGER \(table)_\(event.lowercased())_version AFTER \(event) ON \(table)
                        WHEN NOT EXISTS (SELECT 1 FROM store_versions WHERE name = 'bulk' AND n = 1)
                        BEGIN
                            UPDATE store_versions SET n = n + 1 WHERE name = 'cases';
                            \(rows.map(bump).joined(separator: "\n"))
                        END
                        """)
                }
            }
        }
        m.registerMigration("v7-run-documents") { db in
            // What each run read, so that a re-pull of identical bytes can skip decoding.
            try db.execute(sql: """
                CREATE TABLE run_documents (
                    run_id INTEGER NOT NULL REFERENCES runs(id),
                    name TEXT NOT NULL,
                    pipeline TEXT NOT NULL,
                    bytes INTEGER NOT NULL,
                    fingerprint TEXT NOT NULL,
                    rows_read INTEGER NOT NULL,
                    stored INTEGER NOT NULL,
                    quarantined INTEGER NOT NULL,
                    skipped INTEGER NOT NULL,
                    doc_rows INTEGER NOT NULL,
                    cursor TEXT,
                    PRIMARY KEY (run_id, name)
                ) WITHOUT ROWID
                """)
        }
        m.registerMigration("v8-case-subject-name") { db in
            // The name of a person outside the roster, as the records that raised the case give it.
            try db.execute(sql: "ALTER TABLE cases ADD COLUMN subject_name TEXT")
        }
        m.registerMigration("v9-case-photos") { db in
            try db.execute(sql: """
                CREATE TABLE case_photos (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    case_id INTEGER NOT NULL REFERENCES cases(id),
                    content_type TEXT NOT NULL,
                    bytes BLOB NOT NULL,
                    note TEXT NOT NULL,
                    kept_location INTEGER NOT NULL,
                    uploaded_by TEXT NOT NULL,
                    uploaded_at TEXT NOT NULL
                );
                CREATE INDEX case_photos_case ON case_photos(case_id);
                """)
        }
        return m
    }

    public func previousDocuments(source: String, period: Period, pipeline: String) throws -> (run: Int64, documents: [String: DocumentFingerprint])? {
        try pool.read { db in
            // Only when the source's latest successful run was of this month: a later month's
            // pull may have changed the same records since, and a re-read would change them back.
            guard let last = try Row.fetchOne(db, sql: "SELECT id, period FROM runs WHERE source = ? AND status = 'succeeded' ORDER BY id DESC LIMIT 1",
                                              arguments: [source]),
                  (last["period"] as String) == period.description else { return nil }
            let run: Int64 = last["id"]
            var docs: [String: DocumentFingerprint] = [:]
            for r in try Row.fetchAll(db, sql: "SELECT * FROM run_documents WHERE run_id = ? AND pipeline = ?", arguments: [run, pipeline]) {
                var d = DocumentFingerprint(name: r["name"], pipeline: r["pipeline"], bytes: r["bytes"], fingerprint: r["fingerprint"])
                d.read = r["rows_read"]; d.stored = r["stored"]; d.quarantined = r["quarantined"]; d.skipped = r["skipped"]
                d.info = DocumentInfo(rows: r["doc_rows"], cursor: r["cursor"])
                docs[d.name] = d
            }
            return docs.isEmpty ? nil : (run, docs)
        }
    }

    public func documents(ofRun runID: Int64) throws -> [DocumentFingerprint] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM run_documents WHERE run_id = ? ORDER BY name", arguments: [runID]).map { r in
                var d = DocumentFingerprint(name: r["name"], pipeline: r["pipeline"], bytes: r["bytes"], fingerprint: r["fingerprint"])
                d.read = r["rows_read"]; d.stored = r["stored"]; d.quarantined = r["quarantined"]; d.skipped = r["skipped"]
                d.info = DocumentInfo(rows: r["doc_rows"], cursor: r["cursor"])
                return d
            }
        }
    }

    public func lastSuccessfulRun(source: String, period: Period) throws -> Int64? {
        try pool.read { db in
            try Int64.fetchOne(db, sql: "SELECT max(id) FROM runs WHERE source = ? AND period = ? AND status = 'succeeded'",
                               arguments: [source, period.description])
        }
    }

    public func removeRecords(source: String, period: Period, types: [RecordType]) throws -> Int {
        try pool.write { db in
            var n = 0
            for t in types where try db.tableExists(t.tableName) {
                try db.execute(sql: """
                    DELETE FROM record_changes WHERE record_type = ? AND source = ? AND record_key IN
                      (SELECT _key FROM \(Self.quote(t.tableName)) WHERE _source = ? AND _period = ?)
                    """, arguments: [t.name, source, source, period.description])
                try db.execute(sql: "DELETE FROM \(Self.quote(t.tableName)) WHERE _source = ? AND _period = ?", arguments: [source, period.description])
                n += db.changesCount
            }
            return n
        }
    }

    public func recordCount(of type: RecordType, before period: Period) throws -> Int {
        try pool.read { db in
            guard try db.tableExists(type.tableName) else { return 0 }
            return try Int.fetchOne(db, sql: "SELECT count(*) FROM \(Self.quote(type.tableName)) WHERE _period < ?", arguments: [period.description]) ?? 0
        }
    }

    public func deleteRecords(of type: RecordType, before period: Period) throws -> (records: Int, alertsMasked: Int) {
        try pool.write { db in
            guard try db.tableExists(type.tableName) else { return (0, 0) }
            let table = Self.quote(type.tableName)
            try db.execute(sql: """
                DELETE FROM record_changes WHERE record_type = ? AND EXISTS
                  (SELECT 1 FROM \(table) r WHERE r._source = record_changes.source AND r._key = record_changes.record_key AND r._period < ?)
                """, arguments: [type.name, period.description])
            // The quarantined rows of those months from the sources that write this type: raw
            // department rows, as sensitive as the records.
            let sources = try String.fetchAll(db, sql: "SELECT DISTINCT _source FROM \(table)")
            if !sources.isEmpty {
                let marks = sources.map { _ in "?" }.joined(separator: ",")
                let args = StatementArguments(sources + [period.description])
                try db.execute(sql: "DELETE FROM quarantine_runs WHERE quarantine_id IN (SELECT id FROM quarantine WHERE source IN (\(marks)) AND period < ?)", arguments: args)
                try db.execute(sql: "DELETE FROM quarantine WHERE source IN (\(marks)) AND period < ?", arguments: args)
            }
            try db.execute(sql: "DELETE FROM \(table) WHERE _period < ?", arguments: [period.description])
            let records = db.changesCount
            // The alerts of those months keep their evidence, with ID numbers masked.
            var masked = 0
            // Type names are identifiers: the stored JSON has them as they are.
            let rows = try Row.fetchAll(db, sql: "SELECT id, evidence FROM alerts WHERE period < ? AND instr(evidence, ?) > 0",
                                        arguments: [period.description, "\"type\":\"\(type.name)\""])
            for r in rows {
                let text: String = r["evidence"]
                guard var list = try? JSONDecoder().decode([Evidence].self, from: Data(text.utf8)) else { continue }
                for i in list.indices where list[i].type == type.name {
                    list[i].fields = list[i].fields.mapValues { ResidentID.maskEmbedded(ResidentID.maskIfLikeID($0)) }
                }
                let json = Evidence.json(list)
                if json != text {
                    try db.execute(sql: "UPDATE alerts SET evidence = ? WHERE id = ?", arguments: [json, r["id"] as Int64])
                    masked += 1
                }
            }
            return (records, masked)
        }
    }

    // MARK: Record tables

    static func quote(_ name: String) -> String { "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

    public func prepare(_ types: [RecordType]) throws {
        try pool.write { db in
            for t in types { try Self.migrate(t, db) }
        }
    }

    static func migrate(_ t: RecordType, _ db: Database) throws {
        let table = quote(t.tableName)
        if try !db.tableExists(t.tableName) {
            var cols = [
                "_id INTEGER PRIMARY KEY AUTOINCREMENT", "_source TEXT NOT NULL", "_key TEXT NOT NULL",
                "_hash TEXT NOT NULL", "_row_hash TEXT NOT NULL", "_document TEXT NOT NULL", "_row INTEGER NOT NULL",
                "_run_id INTEGER NOT NULL", "_first_run_id INTEGER NOT NULL", "_period TEXT NOT NULL",
            ]
            cols += t.fields.map { "\(quote($0.name)) \($0.type.sqlType)" }
            try db.execute(sql: "CREATE TABLE \(table) (\(cols.joined(separator: ", ")), UNIQUE(_source, _key))")
            try lookupIndexes(t, db)
            return
        }
        // Extend: add columns for new fields; a field whose type changed cannot be altered in place.
        let existing = try db.columns(in: t.tableName)
        for f in t.fields {
            if let c = existing.first(where: { $0.name == f.name }) {
                if c.type.uppercased() != f.type.sqlType {
                    throw StoreError("类型 \(t.name) 的字段 \(f.name) 已以 \(c.type) 存储，声明却改成了 \(f.type.rawValue)（\(f.type.sqlType)）；请用新的字段名")
                }
            } else {
                try db.execute(sql: "ALTER TABLE \(table) ADD COLUMN \(quote(f.name)) \(f.type.sqlType)")
            }
        }
        try lookupIndexes(t, db)
    }

    /// The indexes rule evaluation looks records up by: the type's link field, and a household
    /// id (a person's household: whose members a household rule reads).
    static func lookupIndexes(_ t: RecordType, _ db: Database) throws {
        let table = quote(t.tableName)
        if let link = t.link {
            try db.execute(sql: "CREATE INDEX IF NOT EXISTS \(quote(t.tableName + "_link")) ON \(table)(\(quote(link)))")
        }
        if t.link != "household_id", t.field("household_id") != nil {
            try db.execute(sql: "CREATE INDEX IF NOT EXISTS \(quote(t.tableName + "_household")) ON \(table)(\"household_id\")")
        }
    }

    // MARK: Runs

    static func now() -> String { Timestamp.now() }

    public func startRun(source: String, period: Period, mappingVersion: String, startedAt: Date) throws -> Int64 {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO runs (source, period, status, started_at, mapping_version) VALUES (?, ?, 'running', ?, ?)",
                           arguments: [source, period.description, Timestamp.string(startedAt), mappingVersion])
            return db.lastInsertedRowID
        }
    }

    public func withRun(_ runID: Int64, _ body: (any RunWriter) throws -> RunCounts) throws -> RunCounts {
        let run = try pool.read { db in try Row.fetchOne(db, sql: "SELECT source, period FROM runs WHERE id = ?", arguments: [runID]) }
        guard let run else { throw StoreError("运行 #\(runID) 不存在") }
        var result = RunCounts()
        try pool.writeWithoutTransaction { db in
            try db.inTransaction(.immediate) {
                let writer = SQLiteRunWriter(db: db, runID: runID, source: run["source"], period: run["period"])
                let counts = try body(writer)
                try writer.finish()
                try Self.setCounts(db, runID, counts, status: .succeeded, error: nil)
                result = counts
                return .commit
            }
        }
        return result
    }

    static func setCounts(_ db: Database, _ id: Int64, _ c: RunCounts, status: RunStatus, error: String?) throws {
        try db.execute(sql: """
            UPDATE runs SET status = ?, finished_at = ?, rows_read = ?, inserted = ?, updated = ?, unchanged = ?,
                quarantined = ?, skipped = ?, documents = ?, error = ? WHERE id = ?
            """, arguments: [status.rawValue, now(), c.read, c.inserted, c.updated, c.unchanged, c.quarantined, c.skipped, c.documents, error, id])
    }

    public func failRun(_ runID: Int64, error: String, counts: RunCounts, status: RunStatus) throws {
        try pool.write { db in
            try Self.setCounts(db, runID, counts, status: status == .notDelivered ? .notDelivered : .failed, error: error)
            if status == .notDelivered {
                try db.execute(sql: """
                    DELETE FROM runs WHERE status = 'not_delivered' AND id <> ?1
                      AND (source, period) = (SELECT source, period FROM runs WHERE id = ?1)
                    """, arguments: [runID])
            }
        }
    }

    public func runs(source: String? = nil, limit: Int = 50) throws -> [RunRecord] {
        try pool.read { db in
            var sql = "SELECT * FROM runs"
            var args: StatementArguments = []
            if let source { sql += " WHERE source = ?"; args += [source] }
            sql += " ORDER BY id DESC LIMIT ?"
            args += [limit]
            return try Row.fetchAll(db, sql: sql, arguments: args).map { r in
                var c = RunCounts()
                c.read = r["rows_read"]; c.inserted = r["inserted"]; c.updated = r["updated"]; c.unchanged = r["unchanged"]
                c.quarantined = r["quarantined"]; c.skipped = r["skipped"]; c.documents = r["documents"]
                return RunRecord(id: r["id"], source: r["source"], period: r["period"], status: RunStatus(rawValue: r["status"]) ?? .failed,
                                 startedAt: r["started_at"], finishedAt: r["finished_at"], mappingVersion: r["mapping_version"],
                                 counts: c, error: r["error"])
            }
        }
    }

    public func quarantine(runID: Int64) throws -> [QuarantineEntry] {
        try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT q.* FROM quarantine q JOIN quarantine_runs qr ON qr.quarantine_id = q.id
                WHERE qr.run_id = ? ORDER BY q.document, q.row_number
                """, arguments: [runID]).map { r in
                let raw = (try? JSONDecoder().decode([[String]].self, from: Data((r["raw"] as String).utf8))) ?? []
                let reasons = (try? JSONDecoder().decode([QuarantineReason].self, from: Data((r["reasons"] as String).utf8))) ?? []
                return QuarantineEntry(source: r["source"], period: r["period"], document: r["document"], row: r["row_number"],
                                       raw: raw, reasons: reasons, rowHash: r["row_hash"], firstRunID: r["first_run_id"], lastRunID: r["last_run_id"])
            }
        }
    }

    public func records(of type: RecordType, source: String? = nil) throws -> [[String: Value]] {
        try pool.read { db in
            guard try db.tableExists(type.tableName) else { return [] }
            var sql = "SELECT * FROM \(Self.quote(type.tableName))"
            var args: StatementArguments = []
            if let source { sql += " WHERE _source = ?"; args += [source] }
            sql += " ORDER BY _id"
            return try Row.fetchAll(db, sql: sql, arguments: args).map { row in
                var out: [String: Value] = [:]
                for f in type.fields { out[f.name] = Self.value(row[f.name], f.type) }
                out["_source"] = .text(row["_source"]); out["_run_id"] = .integer(row["_run_id"]); out["_key"] = .text(row["_key"])
                out["_row"] = .integer(row["_row"]); out["_row_hash"] = .text(row["_row_hash"])
                out["_first_run_id"] = .integer(row["_first_run_id"]); out["_period"] = .text(row["_period"])
                return out
            }
        }
    }

    public func reading<T>(_ body: (any RecordReader) throws -> T) throws -> T {
        try pool.read { db in
            // A walk reads each page about once, and the OS caches the file anyway: a small page
            // cache for it (it also bounds SQLite's sorter) keeps rule evaluation's memory flat.
            try db.execute(sql: "PRAGMA cache_size = -4096")
            defer { try? db.execute(sql: "PRAGMA cache_size = -16384") }
            return try body(SQLiteRecordReader(db))
        }
    }

    public func recordCount(of type: RecordType, source: String? = nil) throws -> Int {
        try pool.read { db in
            guard try db.tableExists(type.tableName) else { return 0 }
            if let source {
                return try Int.fetchOne(db, sql: "SELECT count(*) FROM \(Self.quote(type.tableName)) WHERE _source = ?", arguments: [source]) ?? 0
            }
            return try Int.fetchOne(db, sql: "SELECT count(*) FROM \(Self.quote(type.tableName))") ?? 0
        }
    }

    public func changes(of type: RecordType, source: String? = nil) throws -> [RecordChange] {
        try pool.read { db in
            var sql = "SELECT * FROM record_changes WHERE record_type = ?"
            var args: StatementArguments = [type.name]
            if let source { sql += " AND source = ?"; args += [source] }
            return try Row.fetchAll(db, sql: sql + " ORDER BY id", arguments: args).map {
                RecordChange(runID: $0["run_id"], source: $0["source"], key: $0["record_key"], field: $0["field"], before: $0["before"], after: $0["after"])
            }
        }
    }

    /// Runs a read-only SQL query (for tests); values as text.
    package func query(_ sql: String, _ arguments: [String] = []) throws -> [[String: String]] {
        var out: [[String: String]] = []
        try forEachRow(sql, arguments) { out.append($0) }
        return out
    }

    /// `query` one row at a time.
    package func forEachRow(_ sql: String, _ arguments: [String] = [], _ body: ([String: String]) throws -> Void) throws {
        try pool.read { db in
            let rows = try Row.fetchCursor(db, sql: sql, arguments: StatementArguments(arguments))
            while let row = try rows.next() {
                var d: [String: String] = [:]
                for column in row.columnNames {
                    let value: DatabaseValue = row[column]
                    if let text = Self.text(value) { d[column] = text }
                }
                try body(d)
            }
        }
    }

    /// Runs arbitrary SQL: only for tests that simulate tampering with the file.
    package func unsafeExecuteForTests(_ sql: String) throws {
        try pool.writeWithoutTransaction { db in try db.execute(sql: sql) }
    }

    static func text(_ v: DatabaseValue) -> String? {
        switch v.storage {
        case .null: return nil
        case .int64(let i): return String(i)
        case .double(let d): return String(d)
        case .string(let s): return s
        case .blob(let b): return "<\(b.count) 字节>"
        }
    }

    // MARK: Value conversion

    static func databaseValue(_ v: Value) -> DatabaseValue {
        switch v {
        case .null: return .null
        case .text(let s): return s.databaseValue
        case .integer(let i), .money(let i): return i.databaseValue
        case .decimal(let d): return d.databaseValue
        case .bool(let b): return (b ? 1 : 0).databaseValue
        case .date, .datetime: return v.description.databaseValue
        }
    }

    static let storedDate = try! DateFormat("yyyy-MM-dd")
    static let storedDateTime = try! DateFormat("yyyy-MM-dd HH:mm:ss")

    static func value(_ dbv: DatabaseValue, _ type: FieldType) -> Value {
        if dbv.isNull { return .null }
        switch type {
        case .integer: return Int64.fromDatabaseValue(dbv).map(Value.integer) ?? .null
        case .money: return Int64.fromDatabaseValue(dbv).map(Value.money) ?? .null
        case .decimal: return Double.fromDatabaseValue(dbv).map(Value.decimal) ?? .null
        case .bool: return Int64.fromDatabaseValue(dbv).map { .bool($0 != 0) } ?? .null
        case .date, .datetime:
            guard let s = String.fromDatabaseValue(dbv) else { return .null }
            let fmt = type == .date ? Self.storedDate : Self.storedDateTime
            guard let (d, secs) = fmt.parse(s) else { return .text(s) }
            return type == .date ? .date(d) : .datetime(d, secs)
        default: return String.fromDatabaseValue(dbv).map(Value.text) ?? .null
        }
    }
}


extension FieldType {
    /// The SQLite column type a field is stored in.
    var sqlType: String {
        switch self {
        case .integer, .money, .bool: return "INTEGER"
        case .decimal: return "REAL"
        default: return "TEXT"
        }
    }
}
