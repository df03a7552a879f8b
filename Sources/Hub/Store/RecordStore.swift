import Foundation

/// Counts of one pull run. Rows are source rows; inserted/updated/unchanged count records
/// (a roster row may yield a person and a household).
public struct RunCounts: Sendable, Hashable, Codable {
    public var read = 0
    public var inserted = 0
    public var updated = 0
    public var unchanged = 0
    public var quarantined = 0
    /// Rows that `keep_if` left out on purpose.
    public var skipped = 0
    public var documents = 0
    public init() {}
    /// Records written or confirmed: inserted + updated + unchanged.
    public var stored: Int { inserted + updated + unchanged }
}

public enum RunStatus: String, Sendable, Codable, CaseIterable {
    case running, succeeded, failed
    /// The department has not published the period yet (404 “not yet published”, no file in the
    /// drop folder): waited for, not a failure. One such run is kept per source and period.
    case notDelivered = "not_delivered"

    public var chinese: String {
        switch self {
        case .running: return "进行中"
        case .succeeded: return "成功"
        case .failed: return "失败"
        case .notDelivered: return "尚未送达"
        }
    }
}

/// One pull of one source for one period.
public struct RunRecord: Sendable, Hashable {
    public var id: Int64
    public var source: String
    public var period: String
    public var status: RunStatus
    public var startedAt: String
    public var finishedAt: String?
    public var mappingVersion: String
    public var counts: RunCounts
    public var error: String?
    public init(id: Int64, source: String, period: String, status: RunStatus, startedAt: String, finishedAt: String?,
                mappingVersion: String, counts: RunCounts, error: String?) {
        self.id = id; self.source = source; self.period = period; self.status = status; self.startedAt = startedAt
        self.finishedAt = finishedAt; self.mappingVersion = mappingVersion; self.counts = counts; self.error = error
    }
}

/// Why a row was not taken: the field and source column at fault and what was wrong.
public struct QuarantineReason: Sendable, Hashable, Codable {
    public var field: String?
    public var column: String?
    public var message: String
    public init(field: String? = nil, column: String? = nil, message: String) {
        self.field = field; self.column = column; self.message = message
    }
    /// `身份证号（id_number）：身份证号校验位错误`
    public var text: String {
        if let column, let field { return "\(column)（\(field)）：\(message)" }
        if let column { return "\(column)：\(message)" }
        return message
    }
}

/// A source row kept aside with every reason it was refused, to send back to the department.
public struct QuarantineEntry: Sendable, Hashable {
    public var source: String
    public var period: String
    public var document: String
    public var row: Int
    public var raw: [[String]]   // [[column, value], …] in source order
    public var reasons: [QuarantineReason]
    public var rowHash: String
    public var firstRunID: Int64 = 0
    public var lastRunID: Int64 = 0
    public init(source: String, period: String, document: String, row: Int, raw: [[String]], reasons: [QuarantineReason],
                rowHash: String, firstRunID: Int64 = 0, lastRunID: Int64 = 0) {
        self.source = source; self.period = period; self.document = document; self.row = row; self.raw = raw
        self.reasons = reasons; self.rowHash = rowHash; self.firstRunID = firstRunID; self.lastRunID = lastRunID
    }
}

/// What a run writer remembers of a record's type and key without keeping the key itself
/// (millions of rows stay small): two independent 64-bit hashes, FNV-1a and the standard
/// library's seeded SipHash, so that two different keys of one run are not taken for one
/// (one 64-bit hash would, about once in 37 million million-row runs, and the newer record
/// would be reported a conflict and not stored).
public struct KeyDigest: Hashable, Sendable {
    let fnv: UInt64
    let sip: Int
    public init(_ r: MappedRecord) {
        fnv = Hashing.fnv1a((r.type.name + "\u{1F}" + r.key).utf8)
        var h = Hasher()
        h.combine(r.type.name)
        h.combine(r.key)
        sip = h.finalize()
    }
}

/// A canonical record ready to store, with where it came from.
public struct MappedRecord: Sendable {
    public var type: RecordType
    /// The record's key as text (key field values joined), unique per source and type.
    public var key: String
    /// Values in the type's field order.
    public var values: [Value]
    public var document: String
    public var row: Int
    /// Fingerprint of the raw source row (`Hashing.fingerprint64`).
    public var rowHash: UInt64
    /// Fingerprint of the values: what tells an update from a repeat (computed where the record
    /// is mapped, off the writing thread).
    public var contentHash: UInt64

    public init(type: RecordType, key: String, values: [Value], document: String, row: Int, rowHash: UInt64) {
        self.type = type; self.key = key; self.values = values; self.document = document; self.row = row; self.rowHash = rowHash
        self.contentHash = Hashing.fingerprint64(values)
    }
}

public enum UpsertOutcome: Sendable, Equatable {
    case inserted, updated, unchanged
    /// The same run already wrote this key from another row with other content (one ID listed
    /// in two households): the earlier row stands, this one is refused.
    case conflict(document: String, row: Int)
}

/// One document a run read (a file, a page of an API): its size and fingerprint, and what
/// came of it. A later pull of the same source and month that receives the same bytes, under
/// the same mapping and record types, carries these results over instead of decoding again.
public struct DocumentFingerprint: Sendable {
    public var name: String
    /// Mapping version and record-type declarations the document was mapped with.
    public var pipeline: String
    public var bytes: Int
    /// 128-bit fingerprint of the bytes, hex.
    public var fingerprint: String
    public var read = 0
    /// Records it yielded (inserted, updated or unchanged).
    public var stored = 0
    public var quarantined = 0
    public var skipped = 0
    /// What the decoder told the connector (rows, next-page cursor), for paging.
    public var info = DocumentInfo(rows: 0)
    public init(name: String, pipeline: String, bytes: Int, fingerprint: String) {
        self.name = name; self.pipeline = pipeline; self.bytes = bytes; self.fingerprint = fingerprint
    }
}

/// Writes inside one run's transaction.
public protocol RunWriter {
    func upsert(_ record: MappedRecord) throws -> UpsertOutcome
    /// The outcomes of `upsert` for each record in order, as if written one after the other (a
    /// store over a network writes them in one go).
    func upsert(batch records: [MappedRecord]) throws -> [UpsertOutcome]
    /// How many records the writer would like per `upsert(batch:)` (a server store: thousands, to
    /// save round trips; an embedded one writes each as it comes).
    var preferredBatchSize: Int { get }
    func quarantine(_ entry: QuarantineEntry) throws
    /// Remembers a document this run read.
    func document(_ fingerprint: DocumentFingerprint) throws
    /// A document identical to one of `run`'s: its records stand unchanged and its quarantined
    /// rows are this run's too.
    func carryOver(_ fingerprint: DocumentFingerprint, from run: Int64) throws
}

/// The pull stage's store: record tables, runs, quarantine and the documents each run read.
///
/// A run's records become visible all at once: `withRun` executes the body in one transaction
/// and records the run as succeeded in it, so a failed fetch leaves the store as it was.
/// Every implementation passes `StoreConformance` (HubTesting).
public protocol RecordStore: AnyObject, Sendable {
    /// Creates or extends the tables for these record types.
    func prepare(_ types: [RecordType]) throws
    /// Records a run as running; `startedAt` is the caller's clock (the daemon's, which tests control).
    func startRun(source: String, period: Period, mappingVersion: String, startedAt: Date) throws -> Int64
    /// Runs `body` atomically; on success the run is marked succeeded with the counts it returns.
    func withRun(_ runID: Int64, _ body: (any RunWriter) throws -> RunCounts) throws -> RunCounts
    /// Ends a run that did not succeed: `.failed`, or `.notDelivered` — which replaces any earlier
    /// not-delivered run of the same source and period, so hourly looks leave one row, not dozens.
    func failRun(_ runID: Int64, error: String, counts: RunCounts, status: RunStatus) throws
    /// Runs left running by a process that was killed (their transaction rolled back) are
    /// marked failed; returns how many.
    @discardableResult
    func markInterruptedRuns() throws -> Int
    /// Claims a piece of work that one worker of several does — a source's pull (`pull:SOURCE`),
    /// a run's rule evaluation (`rules:RUN`) — for this process, or nil when another worker holds
    /// it. The claim lasts until released, or until the process dies (its connection closes): a
    /// killed worker's work goes to the next worker that asks. A store for one process grants
    /// every claim.
    func claim(_ work: String) throws -> (any WorkClaim)?
    /// Successful runs whose rule evaluation has not been stored yet (the process stopped in between).
    func runsAwaitingRules() throws -> [(id: Int64, period: String)]
    /// The documents of the latest successful run of this source and month, by name, when they
    /// were read with this pipeline (mapping and types); nil when there is none.
    func previousDocuments(source: String, period: Period, pipeline: String) throws -> (run: Int64, documents: [String: DocumentFingerprint])?
    /// The documents a run read, by name (with their fingerprints: what the archive keeps them under).
    func documents(ofRun runID: Int64) throws -> [DocumentFingerprint]
    /// The latest successful run of this source and month (whether or not a later month's run
    /// followed it), or nil.
    func lastSuccessfulRun(source: String, period: Period) throws -> Int64?
    /// Deletes a source's records of one month of these types, with their field history; for
    /// a replay's scratch copy of the store, before the month is read again. Returns how many.
    func removeRecords(source: String, period: Period, types: [RecordType]) throws -> Int
    /// How many records of a type are of months before `period` (what retention would delete).
    func recordCount(of type: RecordType, before period: Period) throws -> Int
    /// Retention: deletes a type's records of months before `period` with their field history,
    /// and masks the ID numbers in the evidence of those months' alerts that cite the type (the
    /// alerts and cases stay, showing what they showed); one transaction.
    func deleteRecords(of type: RecordType, before period: Period) throws -> (records: Int, alertsMasked: Int)
    /// The latest runs, newest first.
    func runs(source: String?, limit: Int) throws -> [RunRecord]
    /// Quarantined rows of a run (those it saw).
    func quarantine(runID: Int64) throws -> [QuarantineEntry]
    /// All records of a type (for checks, `mapping try` and tests), keyed by field name.
    func records(of type: RecordType, source: String?) throws -> [[String: Value]]
    /// How many records of a type a source holds.
    func recordCount(of type: RecordType, source: String?) throws -> Int
    /// Field changes recorded when a re-pull updated a record: (run, key, field, before, after).
    func changes(of type: RecordType, source: String?) throws -> [RecordChange]
}

extension RecordStore {
    public func startRun(source: String, period: Period, mappingVersion: String) throws -> Int64 {
        try startRun(source: source, period: period, mappingVersion: mappingVersion, startedAt: Date())
    }
    public func runs(source: String? = nil) throws -> [RunRecord] { try runs(source: source, limit: 50) }
    public func records(of type: RecordType) throws -> [[String: Value]] { try records(of: type, source: nil) }
    public func recordCount(of type: RecordType) throws -> Int { try recordCount(of: type, source: nil) }
    public func changes(of type: RecordType) throws -> [RecordChange] { try changes(of: type, source: nil) }
}

/// The rule stage's view of the store: one consistent snapshot of the records at a time.
public protocol RuleReadingStore: AnyObject, Sendable {
    /// Runs `body` with a reader over one consistent snapshot of the records (one read
    /// transaction): how rule evaluation walks tables of millions of records in order, a few
    /// thousand subjects at a time, without holding them in memory.
    func reading<T>(_ body: (any RecordReader) throws -> T) throws -> T
}

/// Reads records inside one snapshot (see `RuleReadingStore.reading`). Records come as
/// dictionaries of the named fields plus their provenance (`_id`, `_run_id`, `_source`,
/// `_row`); empty fields are left out.
///
/// A filter only narrows what is read: it may let through more than a rule wants (the rule
/// checks every record again) but never less.
public protocol RecordReader: AnyObject {
    /// Every record passing `filter`, ordered by `orderBy` and then `_id`; `body` returns false to stop.
    /// Streams: only the current record is held.
    func scan(_ type: RecordType, fields: [String], where filter: RecordFilter?, orderBy: [String],
              _ body: ([String: Value]) throws -> Bool) throws
    /// The records whose `field` is one of `values` (and that pass `filter`), ordered by that
    /// field and then `_id`; looked up through the field's index when it has one.
    func records(of type: RecordType, fields: [String], whereField field: String, in values: [String],
                 and filter: RecordFilter?) throws -> [[String: Value]]
    /// For each value of `field` among `values`: how many distinct values of `distinct` its records have.
    func distinctCounts(of type: RecordType, distinct: String, by field: String, in values: [String]) throws -> [String: Int]
}

public struct RecordChange: Sendable, Hashable {
    public var runID: Int64
    public var source: String
    public var key: String
    public var field: String
    public var before: String?
    public var after: String?
    public init(runID: Int64, source: String, key: String, field: String, before: String?, after: String?) {
        self.runID = runID; self.source = source; self.key = key; self.field = field; self.before = before; self.after = after
    }
}

/// A store-level error (schema conflict, missing run).
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}


/// Work held by this process (see `RecordStore.claim`).
public protocol WorkClaim: AnyObject {
    func release()
}

/// The claim of a store used by one process: always granted.
public final class GrantedClaim: WorkClaim {
    public init() {}
    public func release() {}
}

extension RecordStore {
    public func claim(_ work: String) throws -> (any WorkClaim)? { GrantedClaim() }
}

extension RunWriter {
    public var preferredBatchSize: Int { 1 }
    public func upsert(batch records: [MappedRecord]) throws -> [UpsertOutcome] {
        try records.map { try upsert($0) }
    }
}

extension RecordStore {
    public func failRun(_ runID: Int64, error: String, counts: RunCounts) throws {
        try failRun(runID, error: error, counts: counts, status: .failed)
    }
}
