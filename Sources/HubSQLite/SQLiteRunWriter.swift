import Foundation
internal import GRDB
internal import GRDBSQLite
import Hub

/// Upserts records and quarantines rows inside a run's transaction.
///
/// This is the hot path of every pull (a million rows a month for a large feed), so records
/// go through SQLite's C API on statements prepared once per run: values are bound straight
/// from the typed record (no intermediate argument arrays, no text forms of numbers), and the
/// content fingerprint is compared as bytes. The rare paths (a changed record, a quarantined
/// row) use GRDB.
final class SQLiteRunWriter: RunWriter {
    let db: Database
    let runID: Int64
    let source: String
    let period: String

    init(db: Database, runID: Int64, source: String, period: String) {
        self.db = db; self.runID = runID; self.source = source; self.period = period
    }

    /// The statements of one record type, prepared once per run.
    final class TypeStatements {
        let find: Statement, insert: Statement, touch: Statement
        let update: String, fields: String, table: String
        /// Whether the last record of this type was new: a feed is mostly new records (a first
        /// pull, a new month) or mostly known ones (a re-pull), so the next record is tried the
        /// same way — insert first, or look up first — saving one statement per record.
        var expectNew = false
        init(find: Statement, insert: Statement, touch: Statement, update: String, fields: String, table: String) {
            self.find = find; self.insert = insert; self.touch = touch; self.update = update; self.fields = fields; self.table = table
        }
    }
    private var statements: [String: TypeStatements] = [:]
    /// The type of the previous record: a feed writes one or two types, so the dictionary
    /// lookup is usually skipped.
    private var last: (name: String, statements: TypeStatements)?
    /// Records this run found unchanged, by a digest of type and key (`KeyDigest`), with where they were
    /// read: a later row with the same key and other content contradicts them (a conflict), even
    /// though the stored record was not written by this run. Only unchanged records are kept here
    /// (inserted and updated ones carry this run's id in the store), 24 bytes each.
    private var unchanged: [KeyDigest: (document: Int32, row: Int32)] = [:]
    private var documents: [String] = []

    private func keyHash(_ r: MappedRecord) -> KeyDigest { KeyDigest(r) }

    private func rememberUnchanged(_ r: MappedRecord) -> UpsertOutcome {
        if documents.last != r.document { documents.append(r.document) }
        unchanged[keyHash(r)] = (Int32(documents.count - 1), Int32(clamping: r.row))
        return .unchanged
    }

    /// Secondary indexes dropped for a bulk load into an empty table, rebuilt by `finish`.
    private var deferredIndexes: [(name: String, sql: String)] = []

    private func statements(for t: RecordType) throws -> TypeStatements {
        if let last, last.name == t.name { return last.statements }
        if let s = statements[t.name] { last = (t.name, s); return s }
        guard try db.tableExists(t.tableName) else { throw StoreError("类型 \(t.name) 的表尚未建立（prepare 未调用）") }
        let table = SQLiteStore.quote(t.tableName)
        let cols = t.fields.map { SQLiteStore.quote($0.name) }.joined(separator: ", ")
        let marks = Array(repeating: "?", count: t.fields.count + 9).joined(separator: ", ")
        let sets = t.fields.map { SQLiteStore.quote($0.name) + " = ?" }.joined(separator: ", ")
        // Loading into an empty table: building the secondary indexes once at the end, from the
        // whole table, is several times cheaper than keeping them up to date row by row.
        // Same transaction, so a failed pull rolls the drop back too.
        let empty = try Bool.fetchOne(db, sql: "SELECT NOT EXISTS (SELECT 1 FROM \(table))") ?? false
        if empty {
            let indexes = try Row.fetchAll(db, sql: "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", arguments: [t.tableName])
            for ix in indexes {
                let name: String = ix["name"], sql: String = ix["sql"]
                try db.execute(sql: "DROP INDEX \(SQLiteStore.quote(name))")
                deferredIndexes.append((name, sql))
            }
        }
        let s = TypeStatements(
            find: try db.makeStatement(sql: "SELECT _id, _hash, _run_id, _row, _document FROM \(table) WHERE _source = ? AND _key = ?"),
            insert: try db.makeStatement(sql: "INSERT INTO \(table) (_source, _key, _hash, _row_hash, _document, _row, _run_id, _first_run_id, _period, \(cols)) VALUES (\(marks)) ON CONFLICT(_source, _key) DO NOTHING"),
            touch: try db.makeStatement(sql: "UPDATE \(table) SET _hash = ? WHERE _id = ?"),
            update: "UPDATE \(table) SET \(sets), _hash = ?, _row_hash = ?, _document = ?, _row = ?, _run_id = ?, _period = ? WHERE _id = ?",
            fields: cols, table: table)
        s.expectNew = empty
        statements[t.name] = s
        last = (t.name, s)
        return s
    }

    /// Ends the run's writing: rebuilds the indexes a bulk load deferred.
    func finish() throws {
        for ix in deferredIndexes { try db.execute(sql: ix.sql) }
        deferredIndexes.removeAll()
    }

    func upsert(_ r: MappedRecord) throws -> UpsertOutcome {
        let t = r.type
        let s = try statements(for: t)
        var hash = (UInt64(0), UInt64(0)), rowHash = (UInt64(0), UInt64(0))
        return try withUnsafeMutableBytes(of: &hash) { hashBuf in
            try withUnsafeMutableBytes(of: &rowHash) { rowBuf in
                let h = hashBuf.baseAddress!.assumingMemoryBound(to: UInt8.self)
                Hashing.hex(r.contentHash, into: h)
                let hashText = UnsafeBufferPointer(start: h, count: 16)
                let rh = rowBuf.baseAddress!.assumingMemoryBound(to: UInt8.self)
                Hashing.hex(r.rowHash, into: rh)

                let ins = s.insert.sqliteStatement
                func insert() throws -> Bool {
                    defer { sqlite3_reset(ins); sqlite3_clear_bindings(ins) }
                    bind(ins, 1, source); bind(ins, 2, r.key)
                    sqlite3_bind_text(ins, 3, UnsafeRawPointer(h).assumingMemoryBound(to: CChar.self), 16, transient)
                    sqlite3_bind_text(ins, 4, UnsafeRawPointer(rh).assumingMemoryBound(to: CChar.self), 16, transient)
                    bind(ins, 5, r.document)
                    sqlite3_bind_int64(ins, 6, Int64(r.row))
                    sqlite3_bind_int64(ins, 7, runID)
                    sqlite3_bind_int64(ins, 8, runID)
                    bind(ins, 9, period)
                    for (i, v) in r.values.enumerated() { bind(ins, Int32(10 + i), v) }
                    guard sqlite3_step(ins) == SQLITE_DONE else { throw error("写入记录") }
                    return sqlite3_changes(db.sqliteConnection) > 0
                }
                if s.expectNew, try insert() { return .inserted }

                // Known record?
                let find = s.find.sqliteStatement
                defer { sqlite3_reset(find) }
                bind(find, 1, source); bind(find, 2, r.key)
                switch sqlite3_step(find) {
                case SQLITE_ROW:
                    s.expectNew = false
                    let id = sqlite3_column_int64(find, 0)
                    let stored = UnsafeBufferPointer(start: sqlite3_column_text(find, 1), count: Int(sqlite3_column_bytes(find, 1)))
                    if stored.elementsEqual(hashText) { return rememberUnchanged(r) }
                    if sqlite3_column_int64(find, 2) == runID {
                        let document = String(cString: sqlite3_column_text(find, 4))
                        return .conflict(document: document, row: Int(sqlite3_column_int64(find, 3)))
                    }
                    if !unchanged.isEmpty, let seen = unchanged[keyHash(r)] {
                        return .conflict(document: documents[Int(seen.document)], row: Int(seen.row))
                    }
                    sqlite3_reset(find)
                    return try update(r, id: id, hash: String(decoding: hashText, as: UTF8.self), rowHash: String(decoding: UnsafeBufferPointer(start: rh, count: 16), as: UTF8.self), s)
                case SQLITE_DONE:
                    break
                default:
                    throw error("查找记录")
                }
                sqlite3_reset(find)
                guard try insert() else { throw StoreError("写入记录失败：键 \(r.key) 冲突") }
                s.expectNew = true
                return .inserted
            }
        }
    }

    /// A record whose content fingerprint differs: record each changed field, then overwrite.
    private func update(_ r: MappedRecord, id: Int64, hash: String, rowHash: String, _ s: TypeStatements) throws -> UpsertOutcome {
        let t = r.type
        let old = try Row.fetchOne(db, sql: "SELECT \(s.fields) FROM \(s.table) WHERE _id = ?", arguments: [id])!
        var changed: [(field: String, before: String?, after: String?)] = []
        for (i, f) in t.fields.enumerated() {
            let before = SQLiteStore.value(old[f.name], f.type)
            if before.description != r.values[i].description || before.isNull != r.values[i].isNull {
                changed.append((f.name, before.isNull ? nil : before.description, r.values[i].isNull ? nil : r.values[i].description))
            }
        }
        if changed.isEmpty {
            // Same values under a fingerprint computed another way (a store written by an older
            // version): keep the record, refresh the fingerprint.
            let touch = s.touch.sqliteStatement
            defer { sqlite3_reset(touch) }
            bind(touch, 1, hash); sqlite3_bind_int64(touch, 2, id)
            guard sqlite3_step(touch) == SQLITE_DONE else { throw error("更新记录指纹") }
            return rememberUnchanged(r)
        }
        let log = try db.cachedStatement(sql: "INSERT INTO record_changes (run_id, record_type, source, record_key, field, before, after) VALUES (?, ?, ?, ?, ?, ?, ?)")
        for c in changed {
            try log.execute(arguments: [runID, t.name, source, r.key, c.field, c.before, c.after])
        }
        var args = StatementArguments(r.values.map(SQLiteStore.databaseValue))
        args += [hash, rowHash, r.document, r.row, runID, period, id]
        try db.cachedStatement(sql: s.update).execute(arguments: args)
        return .updated
    }

    func quarantine(_ e: QuarantineEntry) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let raw = String(decoding: try enc.encode(e.raw), as: UTF8.self)
        let reasons = String(decoding: try enc.encode(e.reasons), as: UTF8.self)
        let upsert = try db.cachedStatement(sql: """
            INSERT INTO quarantine (source, period, document, row_number, raw, reasons, row_hash, first_run_id, last_run_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(source, period, row_hash, reasons) DO UPDATE SET last_run_id = excluded.last_run_id,
                document = excluded.document, row_number = excluded.row_number
            RETURNING id
            """)
        let id = try Int64.fetchOne(upsert, arguments: [e.source, e.period, e.document, e.row, raw, reasons, e.rowHash, runID, runID])!
        try db.execute(sql: "INSERT OR IGNORE INTO quarantine_runs (quarantine_id, run_id) VALUES (?, ?)", arguments: [id, runID])
    }

    func document(_ d: DocumentFingerprint) throws {
        try db.execute(sql: """
            INSERT OR REPLACE INTO run_documents (run_id, name, pipeline, bytes, fingerprint, rows_read, stored, quarantined, skipped, doc_rows, cursor)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [runID, d.name, d.pipeline, d.bytes, d.fingerprint, d.read, d.stored, d.quarantined, d.skipped, d.info.rows, d.info.cursor])
    }

    func carryOver(_ d: DocumentFingerprint, from run: Int64) throws {
        // The rows it had quarantined are this run's rows too (as a re-read would have found).
        try db.execute(sql: """
            INSERT OR IGNORE INTO quarantine_runs (quarantine_id, run_id)
            SELECT q.id, ? FROM quarantine q JOIN quarantine_runs qr ON qr.quarantine_id = q.id
            WHERE qr.run_id = ? AND q.document = ?
            """, arguments: [runID, run, d.name])
        try db.execute(sql: """
            UPDATE quarantine SET last_run_id = ? WHERE id IN (SELECT quarantine_id FROM quarantine_runs WHERE run_id = ?) AND document = ?
            """, arguments: [runID, runID, d.name])
        try document(d)
    }

    // MARK: Binding

    private func error(_ doing: String) -> StoreError {
        StoreError("\(doing)失败：" + String(cString: sqlite3_errmsg(db.sqliteConnection)))
    }

    @inline(__always) private func bind(_ stmt: OpaquePointer, _ i: Int32, _ s: String) {
        var s = s
        s.withUTF8 { u in
            // An empty buffer may have no address, which SQLite would store as NULL.
            if u.isEmpty { sqlite3_bind_text(stmt, i, "", 0, transient); return }
            _ = u.withMemoryRebound(to: CChar.self) { sqlite3_bind_text(stmt, i, $0.baseAddress, Int32($0.count), transient) }
        }
    }

    /// Binds a value in the store's representation: money in 分 as an integer, dates as
    /// `yyyy-MM-dd` text, datetimes as `yyyy-MM-dd HH:mm:ss`, booleans as 0/1.
    @inline(__always) private func bind(_ stmt: OpaquePointer, _ i: Int32, _ v: Value) {
        switch v {
        case .null: sqlite3_bind_null(stmt, i)
        case .text(let s): bind(stmt, i, s)
        case .integer(let n), .money(let n): sqlite3_bind_int64(stmt, i, n)
        case .decimal(let d): sqlite3_bind_double(stmt, i, d)
        case .bool(let b): sqlite3_bind_int64(stmt, i, b ? 1 : 0)
        case .date(let d):
            withUnsafeTemporaryAllocation(of: CChar.self, capacity: 10) { buf in
                Self.write(d, into: buf.baseAddress!)
                sqlite3_bind_text(stmt, i, buf.baseAddress, 10, transient)
            }
        case .datetime(let d, let secs):
            withUnsafeTemporaryAllocation(of: CChar.self, capacity: 19) { buf in
                let p = buf.baseAddress!
                Self.write(d, into: p)
                p[10] = 0x20
                Self.digits(secs / 3600, 2, p + 11); p[13] = 0x3A
                Self.digits(secs / 60 % 60, 2, p + 14); p[16] = 0x3A
                Self.digits(secs % 60, 2, p + 17)
                sqlite3_bind_text(stmt, i, p, 19, transient)
            }
        }
    }

    @inline(__always) static func write(_ d: CivilDate, into p: UnsafeMutablePointer<CChar>) {
        digits(d.year, 4, p); p[4] = 0x2D; digits(d.month, 2, p + 5); p[7] = 0x2D; digits(d.day, 2, p + 8)
    }

    @inline(__always) static func digits(_ n: Int, _ width: Int, _ p: UnsafeMutablePointer<CChar>) {
        var n = n
        for k in stride(from: width - 1, through: 0, by: -1) { p[k] = CChar(0x30 + n % 10); n /= 10 }
    }
}

/// SQLite copies the bound bytes before the call returns.
private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
