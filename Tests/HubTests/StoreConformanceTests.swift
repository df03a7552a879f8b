import Foundation
import Testing
import Synchronization
import Hub
@testable import HubSQLite
import HubTesting

/// The store conformance suite against the SQLite store, and against stores broken on
/// purpose, to show that each check catches what it is meant to.
@Suite struct StoreConformanceTests {
    static func sqlite() throws -> any HubStore {
        try SQLiteStore(path: scratchDirectory("conformance").appendingPathComponent("hub.sqlite").path)
    }

    @Test func theSQLiteStorePassesEveryCheck() {
        let failures = StoreConformance(makeStore: Self.sqlite).run()
        #expect(failures.isEmpty, "\(failures.map(\.description).joined(separator: "\n"))")
    }

    @Test(arguments: [
        (BrokenStore.Fault.leaksScope, "inboxScopeAndPaging"),
        (.repeatCountsAsUpdate, "upsertOutcomes"),
        (.neverWithdraws, "withdrawal"),
        (.rewritesAuditHashes, "auditChain"),
        (.dispatchesClosedCases, "dispatchQueue"),
        (.ignoresCounties, "countyScope"),
    ])
    func aBrokenStoreIsCaughtByItsCheck(fault: BrokenStore.Fault, check: String) {
        let failures = StoreConformance(makeStore: { BrokenStore(try Self.sqlite() as! SQLiteStore, fault) }).run()
        #expect(failures.contains { $0.check == check }, "\(fault) should fail \(check); failures: \(failures)")
    }
}

/// The SQLite store with one behaviour broken.
final class BrokenStore: HubStore, @unchecked Sendable {
    enum Fault: Sendable {
        /// Every user sees every township's cases.
        case leaksScope
        /// A repeated record is reported as updated.
        case repeatCountsAsUpdate
        /// Alerts whose condition no longer holds stay.
        case neverWithdraws
        /// The audit log's hashes do not link.
        case rewritesAuditHashes
        /// A dispatch moves a case whatever its status.
        case dispatchesClosedCases
        /// County codes in a user's area are dropped (a county's analyst sees the whole city).
        case ignoresCounties
    }
    let base: SQLiteStore
    let fault: Fault
    init(_ base: SQLiteStore, _ fault: Fault) { self.base = base; self.fault = fault }

    final class Writer: RunWriter {
        let base: any RunWriter
        init(_ base: any RunWriter) { self.base = base }
        func upsert(_ record: MappedRecord) throws -> UpsertOutcome {
            let o = try base.upsert(record)
            return o == .unchanged ? .updated : o
        }
        func quarantine(_ entry: QuarantineEntry) throws { try base.quarantine(entry) }
        func document(_ fingerprint: DocumentFingerprint) throws { try base.document(fingerprint) }
        func carryOver(_ fingerprint: DocumentFingerprint, from run: Int64) throws { try base.carryOver(fingerprint, from: run) }
    }

    final class Ledger: CaseLedger {
        let base: any CaseLedger
        init(_ base: any CaseLedger) { self.base = base }
        func mappingVersions() throws -> [Int64: String] { try base.mappingVersions() }
        func alerts(rule: String, subjectKind: Rule.Subject, period: String, subjects: [String]) throws -> [String: StoredAlert] {
            try base.alerts(rule: rule, subjectKind: subjectKind, period: period, subjects: subjects)
        }
        func cases(keys: [String], period: String) throws -> [String: (id: Int64, severity: Rule.Severity)] { try base.cases(keys: keys, period: period) }
        func insertCase(_ c: NewCase) throws -> Int64 { try base.insertCase(c) }
        func setSeverity(_ severity: Rule.Severity, ofCase id: Int64) throws { try base.setSeverity(severity, ofCase: id) }
        func insertAlert(_ a: Alert, evidence: String, mappingVersions: String, caseID: Int64, at: String) throws -> Int64 {
            try base.insertAlert(a, evidence: evidence, mappingVersions: mappingVersions, caseID: caseID, at: at)
        }
        func updateAlert(_ id: Int64, message: String, evidence: String, ruleVersion: String, mappingVersions: String, at: String) throws {
            try base.updateAlert(id, message: message, evidence: evidence, ruleVersion: ruleVersion, mappingVersions: mappingVersions, at: at)
        }
        func moveAlert(_ id: Int64, to caseID: Int64, as a: Alert, evidence: String, mappingVersions: String, at: String) throws {
            try base.moveAlert(id, to: caseID, as: a, evidence: evidence, mappingVersions: mappingVersions, at: at)
        }
        func deleteAlert(_ id: Int64) throws {}
        func deleteCaseIfEmpty(_ id: Int64) throws -> Bool { try base.deleteCaseIfEmpty(id) }
        func touch(townships: Set<String>) { base.touch(townships: townships) }
    }

    // Records and runs.
    func prepare(_ types: [RecordType]) throws { try base.prepare(types) }
    func startRun(source: String, period: Period, mappingVersion: String, startedAt: Date) throws -> Int64 {
        try base.startRun(source: source, period: period, mappingVersion: mappingVersion, startedAt: startedAt)
    }
    func withRun(_ runID: Int64, _ body: (any RunWriter) throws -> RunCounts) throws -> RunCounts {
        try base.withRun(runID) { w in try body(fault == .repeatCountsAsUpdate ? Writer(w) : w) }
    }
    func failRun(_ runID: Int64, error: String, counts: RunCounts, status: RunStatus) throws {
        try base.failRun(runID, error: error, counts: counts, status: status)
    }
    func markInterruptedRuns() throws -> Int { try base.markInterruptedRuns() }
    func runsAwaitingRules() throws -> [(id: Int64, period: String)] { try base.runsAwaitingRules() }
    func documents(ofRun runID: Int64) throws -> [DocumentFingerprint] { try base.documents(ofRun: runID) }
    func recordCount(of type: RecordType, before period: Period) throws -> Int { try base.recordCount(of: type, before: period) }
    func deleteRecords(of type: RecordType, before period: Period) throws -> (records: Int, alertsMasked: Int) {
        try base.deleteRecords(of: type, before: period)
    }
    func lastSuccessfulRun(source: String, period: Period) throws -> Int64? { try base.lastSuccessfulRun(source: source, period: period) }
    func removeRecords(source: String, period: Period, types: [RecordType]) throws -> Int {
        try base.removeRecords(source: source, period: period, types: types)
    }
    func previousDocuments(source: String, period: Period, pipeline: String) throws -> (run: Int64, documents: [String: DocumentFingerprint])? {
        try base.previousDocuments(source: source, period: period, pipeline: pipeline)
    }
    func runs(source: String?, limit: Int) throws -> [RunRecord] { try base.runs(source: source, limit: limit) }
    func quarantine(runID: Int64) throws -> [QuarantineEntry] { try base.quarantine(runID: runID) }
    func records(of type: RecordType, source: String?) throws -> [[String: Value]] { try base.records(of: type, source: source) }
    func recordCount(of type: RecordType, source: String?) throws -> Int { try base.recordCount(of: type, source: source) }
    func changes(of type: RecordType, source: String?) throws -> [RecordChange] { try base.changes(of: type, source: source) }
    func reading<T>(_ body: (any RecordReader) throws -> T) throws -> T { try base.reading(body) }
    // Cases.
    func writingCases<T>(evaluatedRun: Int64?, _ body: (any CaseLedger) throws -> T) throws -> T {
        try base.writingCases(evaluatedRun: evaluatedRun) { l in try body(fault == .neverWithdraws ? Ledger(l) : l) }
    }
    func closeCase(_ id: Int64, visit: VisitRecord, event: CaseEvent) throws { try base.closeCase(id, visit: visit, event: event) }
    func reopenCase(_ id: Int64, deadline: CivilDate, event: CaseEvent) throws { try base.reopenCase(id, deadline: deadline, event: event) }
    func assignCase(_ id: Int64, township: String, event: CaseEvent) throws {
        if fault == .dispatchesClosedCases, try base.caseDetail(id)?.summary.status == .closed {
            try base.reopenCase(id, deadline: .today, event: event)
        }
        try base.assignCase(id, township: township, event: event)
    }
    func forEachAlert(period: String, _ body: (AlertRow) throws -> Void) throws { try base.forEachAlert(period: period, body) }
    func addPhoto(_ photo: NewPhoto) throws -> Int64 { try base.addPhoto(photo) }
    func photos(ofCase id: Int64) throws -> [PhotoInfo] { try base.photos(ofCase: id) }
    func photo(_ id: Int64) throws -> (info: PhotoInfo, bytes: [UInt8])? { try base.photo(id) }
    func alertCount(period: String) throws -> Int { try base.alertCount(period: period) }
    // Inbox.
    func scoped(_ user: User) -> User {
        switch fault {
        case .leaksScope: return User(id: user.id, username: user.username, displayName: user.displayName, role: .admin, townships: [])
        case .ignoresCounties: return User(id: user.id, username: user.username, displayName: user.displayName, role: user.role,
                                           townships: user.townships.filter { !Area.isCountyCode($0) })
        default: return user
        }
    }
    func cases(for user: User, filter: CaseFilter, today: CivilDate) throws -> [CaseSummary] { try base.cases(for: scoped(user), filter: filter, today: today) }
    func caseCount(for user: User, filter: CaseFilter, today: CivilDate) throws -> Int { try base.caseCount(for: scoped(user), filter: filter, today: today) }
    func inboxOverview(for user: User, today: CivilDate) throws -> InboxOverview { try base.inboxOverview(for: scoped(user), today: today) }
    func caseDetail(_ id: Int64) throws -> CaseDetail? { try base.caseDetail(id) }
    func latestVisits(of caseIDs: [Int64]) throws -> [Int64: CaseDetail.Visit] { try base.latestVisits(of: caseIDs) }
    func dashboard(for user: User, today: CivilDate) throws -> Dashboard { try base.dashboard(for: scoped(user), today: today) }
    func caseCounts(openedSince: String, today: CivilDate) throws -> [TownshipCounts] { try base.caseCounts(openedSince: openedSince, today: today) }
    func regionNames() throws -> [String: String] { try base.regionNames() }
    func inboxVersion(for user: User) throws -> Int { try base.inboxVersion(for: scoped(user)) }
    func rosterVersion() throws -> Int { try base.rosterVersion() }
    // Access and audit.
    func addUser(_ user: NewUser, passwordHash: String) throws -> User { try base.addUser(user, passwordHash: passwordHash) }
    func users() throws -> [User] { try base.users() }
    func credentials(username: String) throws -> Credentials? { try base.credentials(username: username) }
    func recordFailedLogin(userID: Int64, maxFailures: Int, lockUntil: String) throws -> Bool {
        try base.recordFailedLogin(userID: userID, maxFailures: maxFailures, lockUntil: lockUntil)
    }
    func startSession(userID: Int64, tokenHash: String, csrf: String, createdAt: String, expiresAt: String) throws {
        try base.startSession(userID: userID, tokenHash: tokenHash, csrf: csrf, createdAt: createdAt, expiresAt: expiresAt)
    }
    func session(tokenHash: String, now: String) throws -> (user: User, csrf: String)? { try base.session(tokenHash: tokenHash, now: now) }
    func endSession(tokenHash: String) throws { try base.endSession(tokenHash: tokenHash) }
    func accounts() throws -> [Account] { try base.accounts() }
    func changeAccount(username: String, _ change: AccountChange) throws { try base.changeAccount(username: username, change) }
    func append(_ event: AuditEvent) throws {
        try base.append(event)
    }
    func auditEntries(_ filter: AuditFilter) throws -> [AuditEntry] { try base.auditEntries(filter) }
    func forEachAuditEntry(_ body: (AuditEntry) throws -> Void) throws {
        try base.forEachAuditEntry { e in
            var e = e
            if fault == .rewritesAuditHashes { e.hash = String(e.hash.reversed()) }
            try body(e)
        }
    }
    // Delivery and metrics.
    func raiseFeedAlert(source: String, period: String, kind: String, message: String) throws {
        try base.raiseFeedAlert(source: source, period: period, kind: kind, message: message)
    }
    func feedAlerts(limit: Int) throws -> [FeedAlert] { try base.feedAlerts(limit: limit) }
    func metricsSnapshot(today: CivilDate) throws -> MetricsSnapshot { try base.metricsSnapshot(today: today) }
}

@Suite struct SQLiteOpeningTests {
    /// `hubd serve` and `hubd users add` may open a new store at the same moment: each must find
    /// it migrated, none may fail on a migration the other just applied.
    @Test func severalOpenersOfANewStoreAllSucceed() throws {
        for round in 0..<10 {
            let path = scratchDirectory("open-\(round)").appendingPathComponent("h.sqlite").path
            let failures = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 4) { _ in
                do { _ = try SQLiteStore(path: path) } catch { failures.withLock { $0.append("\(error)") } }
            }
            #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
        }
    }
}
