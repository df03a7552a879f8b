import Foundation
import Hub
import NIOCore

/// Upserts records and quarantines rows inside a run's transaction on PostgreSQL.
///
/// Records arrive a batch at a time (`upsert(batch:)`, about a thousand): the batch is copied
/// into a temporary staging table with `COPY … FROM STDIN`, then one statement reads the stored
/// versions of those keys and runs `INSERT … ON CONFLICT … DO UPDATE … WHERE` the content
/// differs and the record was not written by this run. Both parts see the same snapshot, so
/// the outcome of each record — inserted, updated (with its field history), unchanged, or a
/// conflict with another row of this run — is known from the stored version it replaced.
/// Four round trips per batch instead of one or two per record. Each stored version is looked up
/// by its key in the unique index, one lateral lookup per staged row: the planner's statistics
/// describe the table as it was before the run (empty, for a first pull), and a join planned on
/// them scans every row of the source once per batch.
final class PostgresRunWriter: RunWriter {
    let c: PGConnection
    let runID: Int64
    let source: String
    let period: String

    /// Records this run found unchanged, by a digest of type and key: a later row with the same key
    /// and other content contradicts them (a conflict), though the store does not carry this
    /// run's id for them.
    private var unchanged: [KeyDigest: (document: Int32, row: Int32, hash: UInt64)] = [:]
    private var documents: [String] = []
    /// Staging table and upsert statement of each record type, made once per run.
    private var staging: [String: (table: String, columns: [String], statement: String)] = [:]

    init(_ c: PGConnection, runID: Int64, source: String, period: String) {
        self.c = c; self.runID = runID; self.source = source; self.period = period
    }

    /// Sends what is still buffered (rows kept aside), and refreshes the statistics of the record
    /// tables this run wrote many rows to: rule evaluation, right after the pull, plans its lookups
    /// on them (a table still described as empty would be scanned whole for each lookup).
    func finish() throws {
        try flushQuarantine()
        // In name order: two workers' pulls analysing the same tables take their locks in one order.
        for (table, n) in written.sorted(by: { $0.key < $1.key }) where n >= 10_000 { try c.execute("ANALYZE \(PostgresStore.quote(table))") }
    }

    /// Records inserted or updated per record table in this run.
    private var written: [String: Int] = [:]

    /// Rows kept aside, waiting to go to the server in one COPY and one statement.
    private var quarantined = ByteBufferAllocator().buffer(capacity: 0)
    private var quarantinedCount = 0
    private var quarantineStage = false

    /// Batches of about five thousand records: four round trips each.
    var preferredBatchSize: Int { 5000 }

    private func keyHash(_ r: MappedRecord) -> KeyDigest { KeyDigest(r) }

    private func documentIndex(_ name: String) -> Int32 {
        if documents.last != name { documents.append(name) }
        return Int32(documents.count - 1)
    }

    func upsert(_ record: MappedRecord) throws -> UpsertOutcome { try upsert(batch: [record])[0] }

    func upsert(batch records: [MappedRecord]) throws -> [UpsertOutcome] {
        var outcomes = [UpsertOutcome?](repeating: nil, count: records.count)
        // Types apart (a roster row writes a person and a household); keys only meet within a type.
        var byType: [String: [Int]] = [:]
        var order: [String] = []
        for (i, r) in records.enumerated() {
            if byType[r.type.name] == nil { order.append(r.type.name) }
            byType[r.type.name, default: []].append(i)
        }
        for name in order { try upsert(records, byType[name]!, into: &outcomes) }
        return outcomes.map { $0! }
    }

    private func statements(for t: RecordType) throws -> (table: String, columns: [String], statement: String) {
        if let s = staging[t.name] { return s }
        let stage = "hub_stage_\(staging.count)"
        let fields = t.fields.map { PostgresStore.quote($0.name) }
        let fieldDefs = t.fields.map { "\(PostgresStore.quote($0.name)) \($0.type.postgresType)" }
        try c.execute("""
            CREATE TEMPORARY TABLE \(stage) (_ord INTEGER NOT NULL, _key TEXT COLLATE "C" NOT NULL, _hash TEXT NOT NULL, _row_hash TEXT NOT NULL,
                _document TEXT NOT NULL, _row BIGINT NOT NULL\(fieldDefs.isEmpty ? "" : ", " + fieldDefs.joined(separator: ", "))) ON COMMIT DROP
            """)
        let table = PostgresStore.quote(t.tableName)
        let sets = (fields + ["_hash", "_row_hash", "_document", "_row", "_run_id", "_period"]).map { "\($0) = EXCLUDED.\($0)" }.joined(separator: ", ")
        let fieldList = fields.isEmpty ? "" : ", " + fields.joined(separator: ", ")
        let oldFields = fields.isEmpty ? "" : ", " + fields.map { "t." + $0 }.joined(separator: ", ")
        let statement = """
            WITH old AS (
                SELECT s._ord, t.*
                FROM \(stage) s CROSS JOIN LATERAL (
                    SELECT t._hash, t._run_id, t._document, t._row\(oldFields) FROM \(table) t
                    WHERE t._source = $1 AND t._key = s._key LIMIT 1) t
            ), up AS (
                INSERT INTO \(table) AS t (_source, _key, _hash, _row_hash, _document, _row, _run_id, _first_run_id, _period\(fieldList))
                SELECT $1, _key, _hash, _row_hash, _document, _row, $2, $2, $3\(fieldList) FROM \(stage) ORDER BY _ord
                ON CONFLICT (_source, _key) DO UPDATE SET \(sets)
                WHERE t._hash <> EXCLUDED._hash AND t._run_id <> $2
                RETURNING 1
            )
            SELECT old.*, (SELECT count(*) FROM up) AS written FROM old ORDER BY _ord
            """
        let s = (stage, ["_ord", "_key", "_hash", "_row_hash", "_document", "_row"] + t.fields.map(\.name), statement)
        staging[t.name] = s
        return s
    }

    /// The records at `indexes` (all of one type) in order.
    private func upsert(_ records: [MappedRecord], _ indexes: [Int], into outcomes: inout [UpsertOutcome?]) throws {
        let t = records[indexes[0]].type
        // The first row of each key in the batch is written; a later one with the same content is
        // unchanged, with other content a conflict with the first (decided once the first's fate is known).
        var first: [String: Int] = [:]
        var repeats: [Int] = []
        var staged: [Int] = []
        // For a first row that lost to an earlier row of this run: the content that stands.
        var standing: [Int: UInt64] = [:]
        for i in indexes {
            let r = records[i]
            if first[r.key] != nil { repeats.append(i); continue }
            first[r.key] = i
            if !unchanged.isEmpty, let seen = unchanged[keyHash(r)] {
                if seen.hash == r.contentHash {
                    unchanged[keyHash(r)] = (documentIndex(r.document), Int32(clamping: r.row), r.contentHash)
                    outcomes[i] = .unchanged
                } else {
                    outcomes[i] = .conflict(document: documents[Int(seen.document)], row: Int(seen.row))
                    standing[i] = seen.hash
                }
                continue
            }
            staged.append(i)
        }
        if !staged.isEmpty {
            let s = try statements(for: t)
            try c.execute("TRUNCATE \(s.table)")
            var buffer = ByteBufferAllocator().buffer(capacity: staged.count * 160)
            for (ord, i) in staged.enumerated() {
                let r = records[i]
                buffer.writeString(String(ord)); buffer.writeInteger(UInt8(0x09))
                PGConnection.copyEscape(r.key, into: &buffer); buffer.writeInteger(UInt8(0x09))
                buffer.writeString(Hashing.hex(r.contentHash)); buffer.writeInteger(UInt8(0x09))
                buffer.writeString(Hashing.hex(r.rowHash)); buffer.writeInteger(UInt8(0x09))
                PGConnection.copyEscape(r.document, into: &buffer); buffer.writeInteger(UInt8(0x09))
                buffer.writeString(String(r.row))
                for v in r.values {
                    buffer.writeInteger(UInt8(0x09))
                    Self.write(v, into: &buffer)
                }
                buffer.writeInteger(UInt8(0x0A))
            }
            try c.copy(into: s.table, columns: s.columns, buffer)
            let old = try c.query(s.statement, [.text(source), .int(runID), .text(period)])
            var stored: [Int: PGRow] = [:]
            for row in old { stored[row.int("_ord")] = row }
            var history = ByteBufferAllocator().buffer(capacity: 0)
            for (ord, i) in staged.enumerated() {
                let r = records[i]
                guard let was = stored[ord] else { outcomes[i] = .inserted; written[t.tableName, default: 0] += 1; continue }
                if was.text("_hash") == Hashing.hex(r.contentHash) {
                    unchanged[keyHash(r)] = (documentIndex(r.document), Int32(clamping: r.row), r.contentHash)
                    outcomes[i] = .unchanged
                } else if was.int64("_run_id") == runID {
                    outcomes[i] = .conflict(document: was.text("_document"), row: was.int("_row"))
                    standing[i] = UInt64(was.text("_hash"), radix: 16)
                } else {
                    // Each changed field with its value before and after.
                    var changedFields = 0
                    for (k, f) in t.fields.enumerated() {
                        let before = was[f.name].map { PostgresStore.value($0, f.type) } ?? .null
                        let after = r.values[k]
                        guard before.description != after.description || before.isNull != after.isNull else { continue }
                        changedFields += 1
                        for (n, text) in [String(runID), t.name, source, r.key, f.name].enumerated() {
                            if n > 0 { history.writeInteger(UInt8(0x09)) }
                            PGConnection.copyEscape(text, into: &history)
                        }
                        for v in [before, after] {
                            history.writeInteger(UInt8(0x09))
                            if v.isNull { history.writeStaticString("\\N") } else { PGConnection.copyEscape(v.description, into: &history) }
                        }
                        history.writeInteger(UInt8(0x0A))
                    }
                    if changedFields == 0 {
                        // Same values under a fingerprint computed another way (a type that gained a
                        // field this source does not fill): stored again with the new fingerprint,
                        // reported unchanged as on SQLite.
                        unchanged[keyHash(r)] = (documentIndex(r.document), Int32(clamping: r.row), r.contentHash)
                        outcomes[i] = .unchanged
                    } else {
                        outcomes[i] = .updated
                        written[t.tableName, default: 0] += 1
                    }
                }
            }
            if history.readableBytes > 0 {
                try c.copy(into: "record_changes", columns: ["run_id", "record_type", "source", "record_key", "field", "before", "after"], history)
            }
        }
        for i in repeats {
            let r = records[i], f = first[r.key]!, winner = records[f]
            switch outcomes[f]! {
            case .conflict(let document, let row):
                // The first of the batch lost to an earlier row of this run: the repeat meets that
                // row, and is unchanged when it says the same.
                outcomes[i] = standing[f] == r.contentHash ? .unchanged : .conflict(document: document, row: row)
            default:
                outcomes[i] = winner.contentHash == r.contentHash ? .unchanged : .conflict(document: winner.document, row: winner.row)
            }
        }
    }

    /// A value in COPY's text form, in the store's representation (money in 分, booleans 0/1,
    /// dates `yyyy-MM-dd`).
    static func write(_ v: Value, into b: inout ByteBuffer) {
        switch v {
        case .null: b.writeStaticString("\\N")
        case .text(let s): PGConnection.copyEscape(s, into: &b)
        case .integer(let n), .money(let n): b.writeString(String(n))
        case .decimal(let d): b.writeString(d.isFinite ? String(d) : "\\N")
        case .bool(let x): b.writeStaticString(x ? "1" : "0")
        case .date, .datetime: b.writeString(v.description)
        }
    }

    func quarantine(_ e: QuarantineEntry) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let raw = String(decoding: try enc.encode(e.raw), as: UTF8.self)
        let reasons = String(decoding: try enc.encode(e.reasons), as: UTF8.self)
        for (i, text) in [String(quarantinedCount), e.source, e.period, e.document, String(e.row), raw, reasons, e.rowHash].enumerated() {
            if i > 0 { quarantined.writeInteger(UInt8(0x09)) }
            PGConnection.copyEscape(text, into: &quarantined)
        }
        quarantined.writeInteger(UInt8(0x0A))
        quarantinedCount += 1
        if quarantinedCount >= 2000 { try flushQuarantine() }
    }

    /// Stores the buffered rows kept aside as if one by one: the same row (same reasons) seen again
    /// keeps its entry, now pointing at the latest place it was read, and is counted for this run.
    private func flushQuarantine() throws {
        guard quarantinedCount > 0 else { return }
        if !quarantineStage {
            try c.execute("""
                CREATE TEMPORARY TABLE hub_quarantine_stage (_ord INTEGER NOT NULL, source TEXT, period TEXT, document TEXT, row_number BIGINT,
                    raw TEXT, reasons TEXT, row_hash TEXT) ON COMMIT DROP
                """)
            quarantineStage = true
        } else {
            try c.execute("TRUNCATE hub_quarantine_stage")
        }
        try c.copy(into: "hub_quarantine_stage", columns: ["_ord", "source", "period", "document", "row_number", "raw", "reasons", "row_hash"], quarantined)
        try c.execute("""
            WITH q AS (
                INSERT INTO quarantine (source, period, document, row_number, raw, reasons, row_hash, first_run_id, last_run_id)
                SELECT DISTINCT ON (source, period, row_hash, md5(reasons)) source, period, document, row_number, raw, reasons, row_hash, $1::bigint, $1::bigint
                FROM hub_quarantine_stage ORDER BY source, period, row_hash, md5(reasons), _ord DESC
                ON CONFLICT (source, period, row_hash, md5(reasons)) DO UPDATE SET last_run_id = EXCLUDED.last_run_id,
                    document = EXCLUDED.document, row_number = EXCLUDED.row_number
                RETURNING id
            )
            INSERT INTO quarantine_runs (quarantine_id, run_id) SELECT id, $1::bigint FROM q ON CONFLICT DO NOTHING
            """, [.int(runID)])
        quarantined.clear()
        quarantinedCount = 0
    }

    func document(_ d: DocumentFingerprint) throws {
        try c.execute("""
            INSERT INTO run_documents (run_id, name, pipeline, bytes, fingerprint, rows_read, stored, quarantined, skipped, doc_rows, cursor)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            ON CONFLICT (run_id, name) DO UPDATE SET pipeline = EXCLUDED.pipeline, bytes = EXCLUDED.bytes, fingerprint = EXCLUDED.fingerprint,
                rows_read = EXCLUDED.rows_read, stored = EXCLUDED.stored, quarantined = EXCLUDED.quarantined, skipped = EXCLUDED.skipped,
                doc_rows = EXCLUDED.doc_rows, cursor = EXCLUDED.cursor
            """, [.int(runID), .text(d.name), .text(d.pipeline), .int(d.bytes), .text(d.fingerprint), .int(d.read), .int(d.stored),
                  .int(d.quarantined), .int(d.skipped), .int(d.info.rows), .text(d.info.cursor)])
    }

    func carryOver(_ d: DocumentFingerprint, from run: Int64) throws {
        try flushQuarantine()
        // The rows it had quarantined are this run's rows too (as a re-read would have found).
        try c.execute("""
            INSERT INTO quarantine_runs (quarantine_id, run_id)
            SELECT q.id, $1 FROM quarantine q JOIN quarantine_runs qr ON qr.quarantine_id = q.id
            WHERE qr.run_id = $2 AND q.document = $3 ON CONFLICT DO NOTHING
            """, [.int(runID), .int(run), .text(d.name)])
        try c.execute("""
            UPDATE quarantine SET last_run_id = $1 WHERE id IN (SELECT quarantine_id FROM quarantine_runs WHERE run_id = $1) AND document = $2
            """, [.int(runID), .text(d.name)])
        try document(d)
    }
}

/// Reads record tables inside one repeatable-read transaction (`PostgresStore.reading`):
/// scans walk a server-side cursor, a few thousand rows per round trip.
final class PostgresRecordReader: RecordReader {
    let c: PGConnection
    private var existing: [String: Bool] = [:]
    static let lookupChunk = 1000

    init(_ c: PGConnection) { self.c = c }

    func exists(_ type: RecordType) throws -> Bool {
        if let e = existing[type.tableName] { return e }
        let e = try PostgresStore.tableExists(type.tableName, c)
        existing[type.tableName] = e
        return e
    }

    private func columns(_ type: RecordType, _ fields: [String]) -> (sql: String, wanted: [RecordType.Field]) {
        let names = Set(fields)
        let wanted = type.fields.filter { names.contains($0.name) }
        return ((["_id", "_run_id", "_source", "_row"] + wanted.map { PostgresStore.quote($0.name) }).joined(separator: ", "), wanted)
    }

    private func decode(_ row: PGRow, _ wanted: [RecordType.Field]) -> [String: Value] {
        var d: [String: Value] = ["_id": .integer(PGRow.int64(row[0]) ?? 0), "_run_id": .integer(PGRow.int64(row[1]) ?? 0),
                                  "_source": .text(PGRow.string(row[2]) ?? ""), "_row": .integer(PGRow.int64(row[3]) ?? 0)]
        d.reserveCapacity(wanted.count + 4)
        for (i, f) in wanted.enumerated() {
            let v = PostgresStore.value(row[i + 4], f.type)
            if !v.isNull { d[f.name] = v }
        }
        return d
    }

    func scan(_ type: RecordType, fields: [String], where recordFilter: RecordFilter?, orderBy: [String],
              _ body: ([String: Value]) throws -> Bool) throws {
        guard try exists(type) else { return }
        let (cols, wanted) = columns(type, fields)
        var binds: [PGValue] = []
        let whereSQL = recordFilter.map { " WHERE " + PostgresFilter.sql($0, &binds) } ?? ""
        // Empty values first, as SQLite sorts them.
        let order = (orderBy.map { PostgresStore.quote($0) + " NULLS FIRST" } + ["_id"]).joined(separator: ", ")
        try c.forEach("SELECT \(cols) FROM \(PostgresStore.quote(type.tableName))\(whereSQL) ORDER BY \(order)", binds) { row in
            try body(decode(row, wanted))
        }
    }

    /// `column = ANY($n)` for a list of values given as text, typed as the column is.
    private static func anyOf(_ field: RecordType.Field, _ values: [String], _ binds: inout [PGValue]) -> String {
        let column = PostgresStore.quote(field.name)
        switch field.type {
        case .integer, .money, .bool:
            binds.append(.ints(values.compactMap { Int64($0) }))
        case .decimal:
            binds.append(.texts(values))
            return "\(column)::text = ANY($\(binds.count))"
        default:
            binds.append(.texts(values))
        }
        return "\(column) = ANY($\(binds.count))"
    }

    func records(of type: RecordType, fields: [String], whereField field: String, in values: [String],
                 and recordFilter: RecordFilter?) throws -> [[String: Value]] {
        guard !values.isEmpty, let spec = type.field(field), try exists(type) else { return [] }
        let unique = Array(Set(values)).sorted()
        let (cols, wanted) = columns(type, fields + [field])
        var out: [[String: Value]] = []
        for start in stride(from: 0, to: unique.count, by: Self.lookupChunk) {
            var binds: [PGValue] = []
            let condition = Self.anyOf(spec, Array(unique[start..<min(start + Self.lookupChunk, unique.count)]), &binds)
            let filter = recordFilter.map { " AND (" + PostgresFilter.sql($0, &binds) + ")" } ?? ""
            let sql = "SELECT \(cols) FROM \(PostgresStore.quote(type.tableName)) WHERE \(condition)\(filter) ORDER BY \(PostgresStore.quote(field)), _id"
            for row in try c.query(sql, binds) { out.append(decode(row, wanted)) }
        }
        return out
    }

    func distinctCounts(of type: RecordType, distinct: String, by field: String, in values: [String]) throws -> [String: Int] {
        guard !values.isEmpty, let spec = type.field(field), type.field(distinct) != nil, try exists(type) else { return [:] }
        let unique = Array(Set(values)).sorted()
        let column = PostgresStore.quote(field)
        var out: [String: Int] = [:]
        for start in stride(from: 0, to: unique.count, by: Self.lookupChunk) {
            var binds: [PGValue] = []
            let condition = Self.anyOf(spec, Array(unique[start..<min(start + Self.lookupChunk, unique.count)]), &binds)
            for row in try c.query("""
                SELECT \(column)::text AS k, count(DISTINCT \(PostgresStore.quote(distinct))) AS n FROM \(PostgresStore.quote(type.tableName))
                WHERE \(condition) GROUP BY \(column)
                """, binds) {
                if let k = row.string("k") { out[k] = row.int("n") }
            }
        }
        return out
    }
}

/// A `RecordFilter` as a PostgreSQL condition over a record table, with its parameters in the
/// stored forms (money in 分, booleans 0/1, dates as `yyyy-MM-dd` text).
enum PostgresFilter {
    static func sql(_ filter: RecordFilter, _ binds: inout [PGValue]) -> String {
        func placeholder(_ v: Value) -> String {
            binds.append(PostgresStore.bind(v))
            // A decimal literal compared with an integer column, or text with text: typed by the value.
            switch v {
            case .decimal: return "$\(binds.count)::double precision"
            case .integer, .money, .bool: return "$\(binds.count)::bigint"
            default: return "$\(binds.count)::text"
            }
        }
        switch filter {
        case .compare(let field, let op, let value):
            let col = PostgresStore.quote(field)
            switch op {
            case .equal: return "\(col) = \(placeholder(value))"
            case .notEqual: return "(\(col) IS NULL OR \(col) <> \(placeholder(value)))"
            default: return "\(col) \(op.rawValue) \(placeholder(value))"
            }
        case .oneOf(let field, let values):
            guard !values.isEmpty else { return "false" }
            return "\(PostgresStore.quote(field)) IN (\(values.map(placeholder).joined(separator: ", ")))"
        case .all(let parts), .any(let parts):
            let isAll: Bool
            if case .all = filter { isAll = true } else { isAll = false }
            guard !parts.isEmpty else { return isAll ? "true" : "false" }
            return "(" + parts.map { sql($0, &binds) }.joined(separator: isAll ? " AND " : " OR ") + ")"
        case .writtenBy(let run):
            binds.append(.int(run))
            return "_run_id = $\(binds.count)"
        }
    }
}
