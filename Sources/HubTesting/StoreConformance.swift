import Foundation
import Hub

/// The behaviours the hub relies on from a store, written once and run against every store
/// (SQLite now; PostgreSQL runs the same suite): upsert outcomes, quarantine dedup, run
/// atomicity, document carry-over, snapshot reads, case merging, routing and withdrawal,
/// visits, the county's dispatch queue, inbox scope and paging, lockout and sessions, the audit chain, delivery alerts.
///
/// Each check gets a fresh, empty store from `makeStore`. Failures are returned, not thrown, so
/// a test can assert that a correct store has none and that a deliberately broken one is caught
/// by the check meant for it.
///
/// ```swift
/// let failures = StoreConformance(makeStore: { try openYourStore(at: scratchFolder()) }).run()
/// #expect(failures.isEmpty)
/// ```
public struct StoreConformance {
    public struct Failure: CustomStringConvertible, Sendable {
        public var check: String
        public var message: String
        public var description: String { "\(check): \(message)" }
    }

    public let makeStore: () throws -> any HubStore
    public init(makeStore: @escaping () throws -> any HubStore) { self.makeStore = makeStore }

    /// Every check by name.
    public static var checks: [(name: String, run: (StoreConformance, any HubStore, inout Recorder) throws -> Void)] { [
        ("upsertOutcomes", { try $0.upsertOutcomes($1, &$2) }),
        ("quarantineDedup", { try $0.quarantineDedup($1, &$2) }),
        ("runAtomicity", { try $0.runAtomicity($1, &$2) }),
        ("documentCarryOver", { try $0.documentCarryOver($1, &$2) }),
        ("snapshotReads", { try $0.snapshotReads($1, &$2) }),
        ("filteredReads", { try $0.filteredReads($1, &$2) }),
        ("caseMerging", { try $0.caseMerging($1, &$2) }),
        ("withdrawal", { try $0.withdrawal($1, &$2) }),
        ("caseTransitions", { try $0.caseTransitions($1, &$2) }),
        ("dispatchQueue", { try $0.dispatchQueue($1, &$2) }),
        ("namesAndSearch", { try $0.namesAndSearch($1, &$2) }),
        ("inboxScopeAndPaging", { try $0.inboxScopeAndPaging($1, &$2) }),
        ("countyScope", { try $0.countyScope($1, &$2) }),
        ("lockoutAndSessions", { try $0.lockoutAndSessions($1, &$2) }),
        ("auditChain", { try $0.auditChain($1, &$2) }),
        ("deliveryAlerts", { try $0.deliveryAlerts($1, &$2) }),
        ("retention", { try $0.retention($1, &$2) }),
    ] }

    /// Runs the named checks (all by default) and returns what failed.
    public func run(only: Set<String>? = nil) -> [Failure] {
        var failures: [Failure] = []
        for (name, check) in Self.checks where only?.contains(name) ?? true {
            var r = Recorder(check: name)
            do {
                let store = try makeStore()
                try check(self, store, &r)
            } catch {
                r.fail("threw \(error)")
            }
            failures += r.failures
        }
        return failures
    }

    /// Collects the failures of one check.
    public struct Recorder {
        let check: String
        var failures: [Failure] = []
        mutating func expect(_ condition: Bool, _ message: @autoclosure () -> String) {
            if !condition { failures.append(Failure(check: check, message: message())) }
        }
        mutating func fail(_ message: String) { failures.append(Failure(check: check, message: message)) }
    }

    // MARK: fixtures

    static func day(_ text: String) -> CivilDate {
        let p = text.split(separator: "-").compactMap { Int($0) }
        return CivilDate(year: p[0], month: p[1], day: p[2])!
    }

    static let claimType: RecordType = try! RecordType.load(text: """
        type: conformance_claim
        title: 测试结算
        subject: person
        link: id_number
        key: [claim_id]
        fields:
          claim_id: { type: text, title: 结算号, required: true }
          id_number: { type: resident_id, title: 身份证号 }
          settled_on: { type: date, title: 结算日期 }
          self_pay: { type: money, title: 个人自付 }
          inpatient: { type: bool, title: 住院 }
        """, file: "conformance_claim.yaml")

    func record(_ key: String, id: String = "411081196001010013", on: String = "2026-10-03", pay: Int64 = 100_00, inpatient: Bool = true, row: Int = 2) -> MappedRecord {
        MappedRecord(type: Self.claimType, key: key,
                     values: [.text(key), .text(id), .date(Self.day(on)), .money(pay), .bool(inpatient)],
                     document: "claims.csv", row: row, rowHash: Hashing.fnv1a("\(key)\(pay)\(row)".utf8))
    }

    func entry(row: Int, reason: String = "身份证号校验位错误") -> QuarantineEntry {
        QuarantineEntry(source: "claims", period: "2026-10", document: "claims.csv", row: row, raw: [["身份证号", "bad\(row)"]],
                        reasons: [QuarantineReason(field: "id_number", column: "身份证号", message: reason)], rowHash: "h\(row)")
    }

    struct Boom: Error {}

    func pull(_ store: any HubStore, _ period: String = "2026-10", _ body: (any RunWriter) throws -> Void) throws -> (run: Int64, counts: RunCounts) {
        try store.prepare([Self.claimType])
        let run = try store.startRun(source: "claims", period: Period(period)!, mappingVersion: "m1")
        let counts = try store.withRun(run) { w in
            let counting = CountingWriter(w)
            try body(counting)
            return counting.counts
        }
        return (run, counts)
    }

    /// Counts the outcomes a run's writes report.
    final class CountingWriter: RunWriter {
        let base: any RunWriter
        var counts = RunCounts()
        init(_ base: any RunWriter) { self.base = base }
        func upsert(_ record: MappedRecord) throws -> UpsertOutcome {
            let o = try base.upsert(record)
            switch o {
            case .inserted: counts.inserted += 1
            case .updated: counts.updated += 1
            case .unchanged: counts.unchanged += 1
            case .conflict: counts.quarantined += 1
            }
            return o
        }
        func quarantine(_ entry: QuarantineEntry) throws { counts.quarantined += 1; try base.quarantine(entry) }
        func document(_ fingerprint: DocumentFingerprint) throws { counts.documents += 1; try base.document(fingerprint) }
        func carryOver(_ fingerprint: DocumentFingerprint, from run: Int64) throws { try base.carryOver(fingerprint, from: run) }
    }

    /// An error seen on another thread.
    final class ErrorBox: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: (any Error)?
        var error: (any Error)? { lock.lock(); defer { lock.unlock() }; return stored }
        func set(_ e: any Error) { lock.lock(); stored = e; lock.unlock() }
    }

    func alert(_ rule: String, _ subject: String, household: String?, township: String? = "411081101", severity: Rule.Severity = .medium,
               kind: Rule.Subject = .household, message: String = "m", period: String = "2026-10") -> Alert {
        Alert(rule: rule, title: "标题 \(rule)", severity: severity, subjectKind: kind, subjectID: subject, householdID: household,
              villageCode: township.map { $0 + "201" }, townshipCode: township, period: period, message: message,
              evidence: [Evidence(type: "conformance_claim", source: "claims", run: 1, row: 2, fields: ["claim_id": "C1"])], ruleVersion: "r1")
    }

    func user(_ store: any HubStore, _ name: String, _ role: Role, _ townships: [String] = []) throws -> User {
        try store.addUser(NewUser(username: name, displayName: name, role: role, townships: townships), passwordHash: "hash-of-\(name)")
    }

    // MARK: records and runs

    func upsertOutcomes(_ store: any HubStore, _ r: inout Recorder) throws {
        let first = try pull(store) { w in
            r.expect(try w.upsert(record("C1")) == .inserted, "a new key is inserted")
            r.expect(try w.upsert(record("C2")) == .inserted, "a second key is inserted")
        }
        r.expect(first.counts.inserted == 2, "two inserted, got \(first.counts)")
        let second = try pull(store) { w in
            r.expect(try w.upsert(record("C1")) == .unchanged, "the same content is unchanged")
            r.expect(try w.upsert(record("C2", pay: 250_00)) == .updated, "changed content is an update")
        }
        r.expect(second.counts.unchanged == 1 && second.counts.updated == 1, "one unchanged, one updated, got \(second.counts)")
        let rows = try store.records(of: Self.claimType, source: "claims")
        r.expect(rows.count == 2, "re-pulling adds nothing: \(rows.count) records")
        let c2 = rows.first { $0["claim_id"]?.text == "C2" }
        r.expect(c2?["self_pay"] == .money(250_00), "the update is stored: \(String(describing: c2?["self_pay"]))")
        r.expect(c2?["_run_id"] == .integer(second.run), "provenance names the last run")
        let changes = try store.changes(of: Self.claimType, source: "claims")
        r.expect(changes.contains { $0.key == "C2" && $0.field == "self_pay" && $0.runID == second.run }, "the field change is recorded: \(changes)")
        r.expect(try store.recordCount(of: Self.claimType, source: "claims") == 2, "count matches")
        let runs = try store.runs(source: "claims", limit: 10)
        r.expect(runs.count == 2 && runs.allSatisfy { $0.status == .succeeded } && runs.first?.id == second.run, "runs newest first, succeeded")
        r.expect(runs.first?.counts.updated == 1, "a run keeps its counts")
    }

    func quarantineDedup(_ store: any HubStore, _ r: inout Recorder) throws {
        let a = try pull(store) { w in try w.quarantine(entry(row: 5)); try w.quarantine(entry(row: 5)); try w.quarantine(entry(row: 6)) }
        let b = try pull(store) { w in try w.quarantine(entry(row: 5)) }
        let first = try store.quarantine(runID: a.run), second = try store.quarantine(runID: b.run)
        r.expect(first.count == 2, "the same bad row twice in a run is kept once: \(first.count)")
        r.expect(second.count == 1 && second.first?.row == 5, "a later run sees its own bad rows")
        r.expect(second.first?.firstRunID == a.run && second.first?.lastRunID == b.run, "one entry, first and last runs: \(String(describing: second.first))")
        r.expect(first.first?.reasons.first?.column == "身份证号" && first.first?.raw.first?[1] == "bad5", "reasons and raw row kept")
    }

    func runAtomicity(_ store: any HubStore, _ r: inout Recorder) throws {
        try store.prepare([Self.claimType])
        let run = try store.startRun(source: "claims", period: Period("2026-10")!, mappingVersion: "m1")
        r.expect(try store.runs(source: "claims", limit: 1).first?.status == .running, "a started run is running")
        do {
            _ = try store.withRun(run) { w in
                _ = try w.upsert(record("C1"))
                try w.quarantine(entry(row: 3))
                throw Boom()
            }
            r.fail("withRun must rethrow the body's error")
        } catch is Boom {}
        try store.failRun(run, error: "连接中断", counts: RunCounts())
        r.expect(try store.recordCount(of: Self.claimType, source: "claims") == 0, "a failed run leaves no record")
        r.expect(try store.quarantine(runID: run).isEmpty, "a failed run leaves no quarantine")
        let failed = try store.runs(source: "claims", limit: 1).first
        r.expect(failed?.status == .failed && failed?.error == "连接中断", "the run is failed with its reason")
        // Looks at a feed not yet published: one not-delivered run per source and period remains.
        var looks: [Int64] = []
        for period in ["2026-11", "2026-11", "2026-11", "2026-12"] {
            let look = try store.startRun(source: "claims", period: Period(period)!, mappingVersion: "m1")
            try store.failRun(look, error: "尚未发布", counts: RunCounts(), status: .notDelivered)
            looks.append(look)
        }
        let waiting = try store.runs(source: "claims", limit: 50).filter { $0.status == .notDelivered }
        r.expect(waiting.map(\.id) == [looks[3], looks[2]], "the latest look per period is kept: \(waiting.map(\.id)) of \(looks)")
        r.expect(try store.runs(source: "claims", limit: 50).contains { $0.id == run && $0.status == .failed }, "a failed run is not replaced by a look")
        // A run left running by a killed process.
        let orphan = try store.startRun(source: "claims", period: Period("2026-10")!, mappingVersion: "m1")
        r.expect(try store.markInterruptedRuns() == 1, "one interrupted run")
        r.expect(try store.runs(source: "claims", limit: 1).first { $0.id == orphan }?.status == .failed, "marked failed")
        r.expect(try store.runsAwaitingRules().isEmpty, "no successful run awaits rules")
        let ok = try pull(store) { w in _ = try w.upsert(record("C9")) }
        r.expect(try store.runsAwaitingRules().map(\.id) == [ok.run], "a successful run awaits its rules")
        _ = try store.writingCases(evaluatedRun: ok.run) { _ in }
        r.expect(try store.runsAwaitingRules().isEmpty, "marked evaluated with its alerts")
    }

    func documentCarryOver(_ store: any HubStore, _ r: inout Recorder) throws {
        var doc = DocumentFingerprint(name: "claims.csv", pipeline: "p1", bytes: 42, fingerprint: "abc")
        doc.read = 3; doc.stored = 2; doc.quarantined = 1
        doc.info = DocumentInfo(rows: 3, cursor: "next")
        let a = try pull(store) { w in _ = try w.upsert(record("C1")); try w.quarantine(entry(row: 4)); try w.document(doc) }
        let previous = try store.previousDocuments(source: "claims", period: Period("2026-10")!, pipeline: "p1")
        r.expect(previous?.run == a.run, "the latest successful run of the month")
        let d = previous?.documents["claims.csv"]
        r.expect(d?.fingerprint == "abc" && d?.bytes == 42 && d?.read == 3 && d?.stored == 2 && d?.quarantined == 1 && d?.info.cursor == "next",
                 "the document as recorded: \(String(describing: d))")
        r.expect(try store.previousDocuments(source: "claims", period: Period("2026-10")!, pipeline: "p2") == nil, "another pipeline carries nothing over")
        let b = try pull(store) { w in try w.carryOver(doc, from: a.run) }
        r.expect(try store.quarantine(runID: b.run).map(\.row) == [4], "carried-over quarantine belongs to the new run too")
        let nov = try pull(store, "2026-11") { w in _ = try w.upsert(record("N1")); _ = try w.upsert(record("N2")) }
        r.expect(try store.previousDocuments(source: "claims", period: Period("2026-10")!, pipeline: "p1") == nil,
                 "after a later month's pull nothing is carried over")
        // What replay reads: a month's latest successful run and its documents, whatever came after.
        r.expect(try store.lastSuccessfulRun(source: "claims", period: Period("2026-10")!) == b.run, "October's latest run")
        r.expect(try store.lastSuccessfulRun(source: "claims", period: Period("2026-08")!) == nil, "no run in August")
        r.expect(try store.documents(ofRun: b.run).map(\.fingerprint) == ["abc"], "the carried-over document is listed with the run")
        r.expect(try store.documents(ofRun: nov.run).isEmpty, "a run that read no document lists none")
        // A scratch copy removes one month's records of a source before reading it again.
        r.expect(try store.removeRecords(source: "claims", period: Period("2026-11")!, types: [Self.claimType]) == 2, "November's two records")
        r.expect(try store.recordCount(of: Self.claimType, source: "claims") == 1, "October's record stays")
    }

    func retention(_ store: any HubStore, _ r: inout Recorder) throws {
        let id = "411081196001010013"
        var bad = entry(row: 9)
        bad.period = "2026-01"
        let jan = try pull(store, "2026-01") { w in _ = try w.upsert(record("J1", id: id)); _ = try w.upsert(record("J2", id: id)); try w.quarantine(bad) }
        let octQuarantine = try pull(store, "2026-10") { w in try w.quarantine(entry(row: 9)) }
        _ = try pull(store, "2026-01") { w in _ = try w.upsert(record("J1", id: id, pay: 200_00)) }
        _ = try pull(store, "2026-10") { w in _ = try w.upsert(record("O1", id: id)) }
        var old = alert("rule_a", id, household: nil, kind: .person, period: "2026-01")
        old.evidence = [Evidence(type: Self.claimType.name, source: "claims", run: 1, row: 2, fields: ["claim_id": "J1", "id_number": id]),
                        Evidence(type: "other_type", source: "x", run: 1, row: 3, fields: ["id_number": id])]
        var recent = alert("rule_a", id, household: nil, kind: .person, period: "2026-10")
        recent.evidence = [Evidence(type: Self.claimType.name, source: "claims", run: 3, row: 2, fields: ["claim_id": "O1", "id_number": id])]
        _ = try store.saveAlerts([old, recent])
        let before = Period("2026-06")!
        r.expect(try store.recordCount(of: Self.claimType, before: before) == 2, "January's two records are past retention")
        let (gone, masked) = try store.deleteRecords(of: Self.claimType, before: before)
        r.expect(gone == 2 && masked == 1, "two records deleted, one alert's evidence masked: \(gone), \(masked)")
        r.expect(try store.recordCount(of: Self.claimType, source: "claims") == 1, "October's record stays")
        r.expect(try store.changes(of: Self.claimType, source: "claims").isEmpty, "the deleted records' field history goes with them")
        r.expect(try store.quarantine(runID: jan.run).isEmpty, "January's quarantined rows go too")
        r.expect(try store.quarantine(runID: octQuarantine.run).count == 1, "October's stay")
        let admin = try user(store, "admin", .admin)
        let cases = try store.cases(for: admin, filter: CaseFilter(), today: .today)
        r.expect(cases.count == 2, "both alerts' cases stay: \(cases.count)")
        for c in cases {
            let evidence = try store.caseDetail(c.id)?.alerts.flatMap(\.evidence) ?? []
            let ids = evidence.compactMap { $0.fields["id_number"] }
            if c.period == "2026-01" {
                r.expect(evidence.first { $0.type == Self.claimType.name }?.fields["id_number"] == ResidentID.mask(id), "January's evidence is masked: \(ids)")
                r.expect(evidence.first { $0.type == Self.claimType.name }?.fields["claim_id"] == "J1", "and still says what it showed")
                r.expect(evidence.first { $0.type == "other_type" }?.fields["id_number"] == id, "another type's evidence is that type's retention's business")
            } else {
                r.expect(ids == [id], "October's evidence is as it was: \(ids)")
            }
        }
        r.expect(try store.deleteRecords(of: Self.claimType, before: before) == (0, 0), "applying again deletes nothing")
    }

    func snapshotReads(_ store: any HubStore, _ r: inout Recorder) throws {
        _ = try pull(store) { w in _ = try w.upsert(record("C1")) }
        let type = Self.claimType
        var before = 0, after = 0
        let writeError = ErrorBox()
        let second = record("C2")
        try store.reading { reader in
            try reader.scan(type, fields: ["claim_id"], where: nil, orderBy: []) { _ in before += 1; return true }
            // Another thread commits a run while this snapshot is open.
            let done = DispatchSemaphore(value: 0)
            Thread.detachNewThread {
                do {
                    let run = try store.startRun(source: "claims", period: Period("2026-10")!, mappingVersion: "m1")
                    _ = try store.withRun(run) { w in _ = try w.upsert(second); return RunCounts() }
                } catch { writeError.set(error) }
                done.signal()
            }
            done.wait()
            try reader.scan(type, fields: ["claim_id"], where: nil, orderBy: []) { _ in after += 1; return true }
        }
        r.expect(writeError.error == nil, "the write beside a reader succeeds: \(String(describing: writeError.error))")
        r.expect(before == 1 && after == 1, "a reader sees one snapshot (\(before), then \(after))")
        r.expect(try store.recordCount(of: type, source: "claims") == 2, "the write is visible afterwards")
    }

    func filteredReads(_ store: any HubStore, _ r: inout Recorder) throws {
        let a = "411081196001010013", b = "411081196001010021"
        _ = try pull(store) { w in
            _ = try w.upsert(record("C1", id: a, on: "2026-09-30", pay: 50_00, inpatient: false))
            _ = try w.upsert(record("C2", id: a, on: "2026-10-01", pay: 300_00))
            _ = try w.upsert(record("C3", id: b, on: "2026-10-31", pay: 200_00, inpatient: false))
            _ = try w.upsert(MappedRecord(type: Self.claimType, key: "C4", values: [.text("C4"), .text(b), .null, .null, .null],
                                          document: "claims.csv", row: 5, rowHash: 4))
        }
        let type = Self.claimType
        func keys(_ f: RecordFilter?) throws -> [String] {
            try store.reading { reader in
                var out: [String] = []
                try reader.scan(type, fields: ["claim_id"], where: f, orderBy: ["claim_id"]) { out.append($0["claim_id"]?.text ?? "?"); return true }
                return out
            }
        }
        // A filter may keep more than it says, never less: check the must-haves and the clear must-nots.
        let window = try keys(.window("settled_on", from: CivilDate(year: 2026, month: 10, day: 1)!, until: CivilDate(year: 2026, month: 11, day: 1)!))
        r.expect(window.contains("C2") && window.contains("C3") && !window.contains("C1"), "date window: \(window)")
        let money = try keys(.compare("self_pay", .greaterOrEqual, .money(200_00)))
        r.expect(money.contains("C2") && money.contains("C3") && !money.contains("C1") && !money.contains("C4"), "money in 分: \(money)")
        let notEqual = try keys(.compare("self_pay", .notEqual, .money(300_00)))
        r.expect(notEqual.contains("C4") && notEqual.contains("C1") && !notEqual.contains("C2"), "!= keeps empty fields: \(notEqual)")
        let flag = try keys(.compare("inpatient", .equal, .bool(true)))
        r.expect(flag == ["C2"] || (flag.contains("C2") && !flag.contains("C1")), "booleans: \(flag)")
        let either = try keys(.any([.oneOf("claim_id", [.text("C1")]), .writtenBy(run: -1)]))
        r.expect(either.contains("C1") && !either.contains("C2"), "or / one of: \(either)")
        let linked = try store.reading { reader in
            try reader.records(of: type, fields: ["claim_id", "id_number"], whereField: "id_number", in: [b], and: nil).compactMap { $0["claim_id"]?.text }
        }
        r.expect(Set(linked) == ["C3", "C4"], "lookup by link field: \(linked)")
        let distinct = try store.reading { reader in try reader.distinctCounts(of: type, distinct: "claim_id", by: "id_number", in: [a, b]) }
        r.expect(distinct[a] == 2 && distinct[b] == 2, "distinct counts: \(distinct)")
    }

    // MARK: cases

    func caseMerging(_ store: any HubStore, _ r: inout Recorder) throws {
        let saved = try store.saveAlerts([
            alert("rule_a", "H1", household: "H1", severity: .low),
            alert("rule_b", "H1", household: "H1", severity: .high),
            alert("rule_c", "411081196001010013", household: nil, township: nil, severity: .medium, kind: .person),
        ])
        r.expect(saved.newAlerts == 3 && saved.newCases == 2, "three alerts, two cases: \(saved)")
        let admin = try user(store, "admin", .admin)
        let cases = try store.cases(for: admin, filter: CaseFilter(), today: CivilDate(year: 2026, month: 11, day: 1)!)
        let household = cases.first { $0.householdID == "H1" }
        r.expect(household?.severity == .high, "a case takes its most severe alert's severity: \(String(describing: household?.severity))")
        r.expect(household?.rules == ["rule_a", "rule_b"], "both alerts in the household's case: \(String(describing: household?.rules))")
        r.expect(household?.townshipCode == "411081101", "routed to the alert's township")
        let person = cases.first { $0.householdID == nil }
        r.expect(person?.subjectKind == .person && person?.subjectID == "411081196001010013", "a person outside the roster is a case of their own")
        // The same alerts again: nothing new; a changed message is an update.
        let again = try store.saveAlerts([alert("rule_a", "H1", household: "H1", severity: .low, message: "m2")])
        r.expect(again.newAlerts == 0 && again.newCases == 0 && again.updated == 1, "dedup by rule, subject, period: \(again)")
        // The person turns out to be in household H2: the alert moves to H2's case.
        let moved = try store.saveAlerts([alert("rule_c", "411081196001010013", household: "H2", kind: .person)])
        r.expect(moved.updated == 1 && moved.newCases == 1, "an unworked alert follows its subject: \(moved)")
        let after = try store.cases(for: admin, filter: CaseFilter(), today: CivilDate(year: 2026, month: 11, day: 1)!)
        r.expect(after.count == 2 && after.contains { $0.householdID == "H2" } && !after.contains { $0.householdID == nil },
                 "the emptied case is gone: \(after.map(\.subjectID))")
        var exported: [AlertRow] = []
        try store.forEachAlert(period: "2026-10") { exported.append($0) }
        let counted = try store.alertCount(period: "2026-10")
        r.expect(exported.count == 3 && counted == 3, "export lists every alert")
    }

    func withdrawal(_ store: any HubStore, _ r: inout Recorder) throws {
        _ = try store.saveAlerts([alert("rule_a", "H1", household: "H1"), alert("rule_a", "H2", household: "H2")])
        let admin = try user(store, "admin", .admin)
        let worked = try store.cases(for: admin, filter: CaseFilter(), today: .today).first { $0.householdID == "H2" }!
        try store.closeCase(worked.id, visit: VisitRecord(visitedOn: "2026-10-20", visitors: "王五", findings: "已核实", outcome: .noRisk, reason: "收入已恢复"),
                            event: CaseEvent(username: "admin", action: "销号", detail: "入户核实"))
        let totals = try store.storeAlerts { merger in
            try merger.save(RuleChunk(rule: "rule_a", subjectKind: .household, period: "2026-10", alerts: [], evaluated: ["H1", "H2"]), withdraw: true)
        }
        r.expect(totals.withdrawn == 1, "only the unworked alert is withdrawn: \(totals.withdrawn)")
        let left = try store.cases(for: admin, filter: CaseFilter(), today: .today)
        r.expect(left.map(\.householdID) == ["H2"], "the worked case stays, the other goes: \(left.map(\.householdID))")
        // A failure inside the evaluation stores nothing.
        do {
            _ = try store.storeAlerts { merger in
                try merger.save(RuleChunk(rule: "rule_x", subjectKind: .household, period: "2026-10",
                                          alerts: [alert("rule_x", "H9", household: "H9")], evaluated: ["H9"]), withdraw: true)
                throw Boom()
            }
            r.fail("storeAlerts must rethrow")
        } catch is Boom {}
        r.expect(try store.cases(for: admin, filter: CaseFilter(), today: .today).count == 1, "a failed evaluation stores nothing")
    }

    func caseTransitions(_ store: any HubStore, _ r: inout Recorder) throws {
        _ = try store.saveAlerts([alert("rule_a", "H1", household: "H1")])
        let admin = try user(store, "admin", .admin)
        let id = try store.cases(for: admin, filter: CaseFilter(), today: .today)[0].id
        let visit = VisitRecord(visitedOn: "2026-10-20", visitors: "王五", findings: "家中有病人", outcome: .monitor, monitoringType: "突发严重困难户")
        try store.closeCase(id, visit: visit, event: CaseEvent(username: "va", action: "销号", detail: "入户核实"))
        do { try store.closeCase(id, visit: visit, event: CaseEvent(username: "va", action: "销号", detail: "")); r.fail("a closed case refuses a second visit") }
        catch let e as CaseChangeError { r.expect(e == .notOpen, "refused as not open: \(e)") }
        let closed = try store.caseDetail(id)
        r.expect(closed?.summary.status == .closed && closed?.summary.outcome == "monitor", "closed with its outcome")
        r.expect(closed?.visits.first?.monitoringType == "突发严重困难户" && closed?.visits.first?.recordedBy == "va", "the visit is kept")
        r.expect(try store.latestVisits(of: [id])[id]?.visitors == "王五", "latest visit per case")
        try store.reopenCase(id, deadline: CivilDate(year: 2026, month: 12, day: 1)!, event: CaseEvent(username: "an", action: "重新打开", detail: "复核"))
        do { try store.reopenCase(id, deadline: .today, event: CaseEvent(username: "an", action: "重新打开", detail: "")); r.fail("an open case cannot be reopened") }
        catch let e as CaseChangeError { r.expect(e == .notClosed, "refused as not closed: \(e)") }
        let reopened = try store.caseDetail(id)
        r.expect(reopened?.summary.status == .open && reopened?.summary.deadline == "2026-12-01", "open again with the new deadline")
        r.expect(reopened?.events.map(\.action) == ["销号", "重新打开"], "history in order: \(String(describing: reopened?.events.map(\.action)))")
        // Photos stay with their case, byte for byte.
        let bytes: [UInt8] = [0xFF, 0xD8, 0xFF, 0xD9] + (0..<300).map { UInt8($0 % 256) }
        let pid = try store.addPhoto(NewPhoto(caseID: id, contentType: "image/jpeg", bytes: bytes, note: "屋内", keptLocation: false, uploadedBy: "va"))
        r.expect(try store.photos(ofCase: id).map(\.id) == [pid] && store.photos(ofCase: id).first?.size == bytes.count, "listed without bytes")
        r.expect(try store.photo(pid)?.bytes == bytes && store.photo(pid)?.info.note == "屋内", "read back whole")
        do { _ = try store.addPhoto(NewPhoto(caseID: 999_999, contentType: "image/jpeg", bytes: bytes, note: "", keptLocation: false, uploadedBy: "va")); r.fail("no such case") }
        catch let e as CaseChangeError { r.expect(e == .notFound, "photo of a missing case: \(e)") }
        do { try store.closeCase(999_999, visit: visit, event: CaseEvent(username: "va", action: "销号", detail: "")); r.fail("no such case") }
        catch let e as CaseChangeError { r.expect(e == .notFound, "not found: \(e)") }
        r.expect(try store.caseDetail(999_999) == nil, "no detail for a missing case")
    }

    func dispatchQueue(_ store: any HubStore, _ r: inout Recorder) throws {
        _ = try store.saveAlerts([alert("rule_o", "P1", household: nil, township: nil, kind: .person),
                                  alert("rule_o", "P2", household: nil, township: nil, kind: .person),
                                  alert("rule_a", "H1", household: "H1")])
        let analyst = try user(store, "an", .analyst)
        let verifier = try user(store, "va", .verifier, ["411081102"])
        var queue = CaseFilter()
        queue.awaitingDispatch = true
        let waiting = try store.cases(for: analyst, filter: queue, today: .today)
        r.expect(waiting.map(\.subjectID).sorted() == ["P1", "P2"], "the queue holds the cases with no township: \(waiting.map(\.subjectID))")
        r.expect(try store.caseCount(for: analyst, filter: queue, today: .today) == 2, "and counts them")
        r.expect(try store.cases(for: verifier, filter: CaseFilter(), today: .today).isEmpty, "a township sees none of them")
        let before = try store.inboxVersion(for: verifier)
        let p1 = waiting.first { $0.subjectID == "P1" }!.id
        try store.assignCase(p1, township: "411081102", event: CaseEvent(username: "an", action: "分派", detail: "分派至二乡"))
        r.expect(try store.inboxVersion(for: verifier) != before, "the township's inbox version moves")
        let mine = try store.cases(for: verifier, filter: CaseFilter(), today: .today)
        r.expect(mine.map(\.id) == [p1], "the township now sees the dispatched case: \(mine.map(\.id))")
        r.expect(try store.cases(for: analyst, filter: queue, today: .today).map(\.subjectID) == ["P2"], "it left the queue")
        r.expect(try store.caseDetail(p1)?.events.map(\.action) == ["分派"], "the dispatch is in the case history")
        var routed: [String: String?] = [:]
        try store.forEachAlert(period: "2026-10") { routed[$0.subjectID] = $0.townshipCode }
        r.expect(routed["P1"] == .some("411081102"), "its alerts follow: \(String(describing: routed["P1"]))")
        let p2 = try store.cases(for: analyst, filter: queue, today: .today)[0].id
        try store.closeCase(p2, visit: VisitRecord(visitedOn: "2026-10-20", visitors: "王五", findings: "查无此人", outcome: .unverifiable),
                            event: CaseEvent(username: "an", action: "销号", detail: ""))
        do { try store.assignCase(p2, township: "411081102", event: CaseEvent(username: "an", action: "分派", detail: "")); r.fail("a closed case is not dispatched") }
        catch let e as CaseChangeError { r.expect(e == .notOpen, "refused as not open: \(e)") }
        do { try store.assignCase(999_999, township: "411081102", event: CaseEvent(username: "an", action: "分派", detail: "")); r.fail("no such case") }
        catch let e as CaseChangeError { r.expect(e == .notFound, "not found: \(e)") }
        let counts = try store.dashboard(for: analyst, today: .today).byTownship
        r.expect(counts.filter { $0.code.isEmpty }.map(\.closed) == [1], "the dashboard has one row for unrouted cases: \(counts.map(\.code))")
    }

    /// The roster's person type as the inbox reads names from it (its name is the hub's convention).
    static let personType: RecordType = try! RecordType.load(text: """
        type: person
        title: 家庭成员
        subject: person
        link: id_number
        key: [id_number]
        fields:
          id_number: { type: resident_id, title: 身份证号, required: true }
          household_id: { type: text, title: 户编号, required: true }
          name: { type: text, title: 姓名 }
          relation: { type: text, title: 与户主关系 }
        """, file: "person.yaml")

    func namesAndSearch(_ store: any HubStore, _ r: inout Recorder) throws {
        try store.prepare([Self.personType])
        let run = try store.startRun(source: "roster", period: Period("2026-10")!, mappingVersion: "m1")
        _ = try store.withRun(run) { w in
            for (n, (id, hh, name, relation)) in [("411081196001010013", "H1", "王五", "之子"), ("411081195001010016", "H1", "李四", "户主"),
                                                  ("411081197001010011", "H2", "赵六", "户主")].enumerated() {
                _ = try w.upsert(MappedRecord(type: Self.personType, key: id, values: [.text(id), .text(hh), .text(name), .text(relation)],
                                              document: "roster.csv", row: n + 2, rowHash: UInt64(n + 1)))
            }
            return RunCounts()
        }
        var outsider = alert("rule_o", "110101199003077774", household: nil, kind: .person)
        outsider.subjectName = "钱七"
        _ = try store.saveAlerts([alert("rule_a", "H1", household: "H1", severity: .low), alert("rule_a", "H2", household: "H2", severity: .high), outsider])
        let analyst = try user(store, "an", .analyst)
        let all = try store.cases(for: analyst, filter: CaseFilter(), today: .today)
        let names = Dictionary(uniqueKeysWithValues: all.map { ($0.householdID ?? $0.subjectID, $0.subjectName ?? "") })
        r.expect(names == ["H1": "李四", "H2": "赵六", "110101199003077774": "钱七"], "户主 for households, the person's name otherwise: \(names)")
        r.expect(all.first?.householdID == "H2", "on the same deadline the more severe case comes first: \(all.map { $0.householdID ?? $0.subjectID })")
        func found(_ q: String, _ u: User? = nil) throws -> [String] {
            var f = CaseFilter(); f.search = q
            return try store.cases(for: u ?? analyst, filter: f, today: .today).map { $0.householdID ?? $0.subjectID }.sorted()
        }
        r.expect(try found("王五") == ["H1"], "a member's name finds the household")
        r.expect(try found("钱") == ["110101199003077774"], "part of an outsider's name")
        r.expect(try found("0013") == ["H1"], "a member's ID by its last digits")
        r.expect(try found("7774") == ["110101199003077774"], "an outsider's ID by its last digits")
        r.expect(try found("411081197001010011") == ["H2"], "a whole ID")
        r.expect(try found("H2") == [], "two characters are not an ID search, and no name holds them")
        r.expect(try found("%") == [] && found("_") == [], "wildcards match themselves")
        let elsewhere = try user(store, "vb", .verifier, ["411081102"])
        r.expect(try found("李四", elsewhere) == [], "search stays within the user's scope")
        var counted = CaseFilter(); counted.search = "王五"
        r.expect(try store.caseCount(for: analyst, filter: counted, today: .today) == 1, "and counts the same way")
    }

    func inboxScopeAndPaging(_ store: any HubStore, _ r: inout Recorder) throws {
        var alerts: [Alert] = []
        for i in 0..<30 { alerts.append(alert("rule_a", "A\(i)", household: "A\(i)", township: "411081101", severity: i % 3 == 0 ? .high : .low)) }
        for i in 0..<7 { alerts.append(alert("rule_b", "B\(i)", household: "B\(i)", township: "411081102")) }
        _ = try store.saveAlerts(alerts)
        let admin = try user(store, "admin", .admin)
        let va = try user(store, "va", .verifier, ["411081101"])
        let vb = try user(store, "vb", .verifier, ["411081102"])
        let op = try user(store, "op", .operator)
        let today = CivilDate.today
        r.expect(try store.caseCount(for: admin, filter: CaseFilter(), today: today) == 37, "the county sees all")
        r.expect(try store.caseCount(for: va, filter: CaseFilter(), today: today) == 30, "a verifier sees their township")
        let vbCases = try store.cases(for: vb, filter: CaseFilter(), today: today)
        r.expect(vbCases.count == 7 && vbCases.allSatisfy { $0.townshipCode == "411081102" }, "and nothing else: \(vbCases.map(\.townshipCode))")
        r.expect(try store.cases(for: op, filter: CaseFilter(), today: today).isEmpty, "an operator sees no case")
        var leak = CaseFilter(); leak.township = "411081102"
        r.expect(try store.cases(for: va, filter: leak, today: today).isEmpty, "a township filter cannot widen a verifier's scope")
        // Pages: every case once, in order, none past the end.
        var seen: [Int64] = []
        var f = CaseFilter(); f.limit = 8
        while true {
            let page = try store.cases(for: va, filter: f, today: today)
            seen += page.map(\.id)
            if page.count < f.limit { break }
            f.offset += page.count
        }
        r.expect(seen.count == 30 && Set(seen).count == 30, "paging visits each case once: \(seen.count)")
        var high = CaseFilter(); high.severity = .high
        r.expect(try store.caseCount(for: va, filter: high, today: today) == 10, "severity filter")
        var huge = CaseFilter(); huge.limit = 1_000_000
        r.expect(try store.cases(for: admin, filter: huge, today: today).count <= CaseFilter.maxLimit, "a page is capped")
        let overview = try store.inboxOverview(for: va, today: today)
        r.expect(overview.open == 30 && overview.rules.map(\.name) == ["rule_a"], "overview in scope: \(overview.open) \(overview.rules.map(\.name))")
        let v0 = try store.inboxVersion(for: vb)
        let aCase = try store.cases(for: va, filter: CaseFilter(), today: today)[0].id
        try store.closeCase(aCase, visit: VisitRecord(visitedOn: "2026-10-20", visitors: "王五", findings: "x", outcome: .unverifiable),
                            event: CaseEvent(username: "va", action: "销号", detail: ""))
        r.expect(try store.inboxVersion(for: vb) == v0, "a visit in one township leaves another's inbox version")
        let closedNow = try store.inboxOverview(for: va, today: today).closed
        r.expect(closedNow == 1, "the visit shows in its own township's counts")
        let dashboard = try store.dashboard(for: admin, today: today)
        r.expect(dashboard.byTownship.map(\.code).sorted() == ["411081101", "411081102"], "dashboard by township")
    }

    /// A city's hub: an analyst bound to a county (6-digit code) sees that county's townships
    /// and nothing else, not even the dispatch queue; one without an area sees the whole city;
    /// a verifier may hold a county and a township of another.
    func countyScope(_ store: any HubStore, _ r: inout Recorder) throws {
        var alerts: [Alert] = []
        for i in 0..<5 { alerts.append(alert("rule_a", "Y\(i)", household: "Y\(i)", township: "411081101")) }
        for i in 0..<3 { alerts.append(alert("rule_b", "Z\(i)", household: "Z\(i)", township: "411081102")) }
        for i in 0..<4 { alerts.append(alert("rule_c", "L\(i)", household: "L\(i)", township: "411024101")) }
        // A code that shares digits but not the county's first six: 4110810 is not in 411081.
        alerts.append(alert("rule_c", "X0", household: "X0", township: "410810101"))
        for i in 0..<2 { alerts.append(alert("rule_o", "P\(i)", household: nil, township: nil, kind: .person)) }
        _ = try store.saveAlerts(alerts)
        let county = try user(store, "yz", .analyst, ["411081"])
        let city = try user(store, "city", .analyst)
        let mixed = try user(store, "vm", .verifier, ["411024", "411081102"])
        let today = CivilDate.today
        r.expect(try store.caseCount(for: city, filter: CaseFilter(), today: today) == 15, "the city sees every case")
        let mine = try store.cases(for: county, filter: CaseFilter(), today: today)
        r.expect(mine.count == 8 && mine.allSatisfy { $0.townshipCode?.hasPrefix("411081") == true },
                 "a county's analyst sees its townships only: \(mine.map(\.townshipCode))")
        r.expect(try store.caseCount(for: county, filter: CaseFilter(), today: today) == 8, "and counts them")
        var queue = CaseFilter(); queue.awaitingDispatch = true
        r.expect(try store.caseCount(for: county, filter: queue, today: today) == 0, "the dispatch queue is the city's")
        var other = CaseFilter(); other.township = "411024101"
        r.expect(try store.cases(for: county, filter: other, today: today).isEmpty, "a township filter cannot leave the county")
        let theirs = try store.cases(for: mixed, filter: CaseFilter(), today: today)
        r.expect(Set(theirs.compactMap(\.townshipCode)) == ["411024101", "411081102"] && theirs.count == 7,
                 "a county and a township: \(theirs.map(\.townshipCode))")
        let overview = try store.inboxOverview(for: county, today: today)
        r.expect(overview.open == 8 && overview.rules.map(\.name) == ["rule_a", "rule_b"], "the overview over the county: \(overview.open) \(overview.rules.map(\.name))")
        let board = try store.dashboard(for: county, today: today)
        r.expect(board.byTownship.map(\.code) == ["411081101", "411081102"], "the county's dashboard: \(board.byTownship.map(\.code))")
        r.expect(board.byRule.map(\.cases) == [5, 3] && board.byPeriod.map(\.raised) == [8], "its rules and months: \(board.byRule.map(\.cases)) \(board.byPeriod.map(\.raised))")
        r.expect(try store.dashboard(for: city, today: today).byTownship.map(\.code) == ["", "410810101", "411024101", "411081101", "411081102"],
                 "the city's dashboard has every township and the queue")
        let v0 = try store.inboxVersion(for: county)
        let elsewhere = try store.cases(for: city, filter: other, today: today)[0].id
        try store.closeCase(elsewhere, visit: VisitRecord(visitedOn: "2026-10-20", visitors: "王五", findings: "x", outcome: .unverifiable),
                            event: CaseEvent(username: "city", action: "销号", detail: ""))
        r.expect(try store.inboxVersion(for: county) == v0, "a visit in another county leaves this county's inbox version")
        try store.closeCase(mine[0].id, visit: VisitRecord(visitedOn: "2026-10-20", visitors: "王五", findings: "x", outcome: .unverifiable),
                            event: CaseEvent(username: "yz", action: "销号", detail: ""))
        r.expect(try store.inboxVersion(for: county) != v0, "a visit in the county moves it")
    }

    // MARK: access, audit, delivery

    func lockoutAndSessions(_ store: any HubStore, _ r: inout Recorder) throws {
        let u = try user(store, "va", .verifier, ["411081101"])
        do { _ = try user(store, "va", .admin); r.fail("a taken name is refused") } catch is AccessError {}
        r.expect(try store.users().map(\.username) == ["va"], "one user")
        for i in 1...4 {
            r.expect(try store.recordFailedLogin(userID: u.id, maxFailures: 5, lockUntil: "2026-11-01T00:15:00Z") == false, "failure \(i) does not lock")
        }
        r.expect(try store.credentials(username: "va")?.failedLogins == 4, "failures are counted")
        r.expect(try store.recordFailedLogin(userID: u.id, maxFailures: 5, lockUntil: "2026-11-01T00:15:00Z"), "the fifth locks")
        let locked = try store.credentials(username: "va")
        r.expect(locked?.failedLogins == 0, "and the count starts again")
        r.expect(locked?.lockedUntil == "2026-11-01T00:15:00Z" && locked?.passwordHash == "hash-of-va", "lock and hash kept: \(String(describing: locked))")
        r.expect(try store.credentials(username: "nobody") == nil, "no credentials for an unknown name")
        try store.startSession(userID: u.id, tokenHash: "t1", csrf: "c1", createdAt: "2026-11-01T00:00:00Z", expiresAt: "2026-11-01T12:00:00Z")
        r.expect(try store.credentials(username: "va")?.lockedUntil == nil, "a session clears the lock")
        let s = try store.session(tokenHash: "t1", now: "2026-11-01T01:00:00Z")
        r.expect(s?.user.username == "va" && s?.csrf == "c1" && s?.user.townships == ["411081101"], "the session's user and CSRF token")
        r.expect(try store.session(tokenHash: "t1", now: "2026-11-01T12:00:01Z") == nil, "an expired session is no session")
        r.expect(try store.session(tokenHash: "t2", now: "2026-11-01T01:00:00Z") == nil, "an unknown token is no session")
        try store.endSession(tokenHash: "t1")
        r.expect(try store.session(tokenHash: "t1", now: "2026-11-01T01:00:00Z") == nil, "a session ends")
        // The administrator's account care.
        _ = try store.recordFailedLogin(userID: u.id, maxFailures: 1, lockUntil: "2999-01-01T00:00:00Z")
        r.expect(try store.accounts().first?.lockedUntil == "2999-01-01T00:00:00Z", "accounts show the lock")
        try store.changeAccount(username: "va", .unlock)
        r.expect(try store.credentials(username: "va")?.lockedUntil == nil, "unlocked")
        try store.startSession(userID: u.id, tokenHash: "t3", csrf: "c3", createdAt: "2026-11-01T00:00:00Z", expiresAt: "2026-11-01T12:00:00Z")
        try store.changeAccount(username: "va", .disable)
        r.expect(try store.credentials(username: "va") == nil && store.session(tokenHash: "t3", now: "2026-11-01T01:00:00Z") == nil,
                 "a disabled account can neither sign in nor keep its session")
        r.expect(try store.accounts().first?.active == false, "and shows as disabled")
        try store.changeAccount(username: "va", .enable)
        try store.startSession(userID: u.id, tokenHash: "t4", csrf: "c4", createdAt: "2026-11-01T00:00:00Z", expiresAt: "2026-11-01T12:00:00Z")
        try store.changeAccount(username: "va", .password(hash: "new-hash"))
        r.expect(try store.credentials(username: "va")?.passwordHash == "new-hash", "a new password")
        r.expect(try store.session(tokenHash: "t4", now: "2026-11-01T01:00:00Z") == nil, "ends the sessions")
        do { try store.changeAccount(username: "nobody", .unlock); r.fail("no such user") } catch is AccessError {}
    }

    func auditChain(_ store: any HubStore, _ r: inout Recorder) throws {
        for i in 0..<5 { try store.audit("va", "查看案件", target: "案件 #\(i)", detail: "d\(i)", address: "127.0.0.1") }
        r.expect(try store.verifyAuditLog() == nil, "a fresh chain verifies")
        var entries: [AuditEntry] = []
        try store.forEachAuditEntry { entries.append($0) }
        r.expect(entries.count == 5 && entries.map(\.target) == (0..<5).map { "案件 #\($0)" }, "oldest first")
        r.expect(entries.first?.prevHash == "" && zip(entries, entries.dropFirst()).allSatisfy { $1.prevHash == $0.hash }, "each entry links the previous one")
        r.expect(entries.allSatisfy { AuditChain.hash(prev: $0.prevHash, $0.event) == $0.hash }, "each hash covers the entry")
        r.expect(try store.auditLog(limit: 2).map(\.target) == ["案件 #4", "案件 #3"], "newest first, limited")
        var page = AuditFilter(limit: 2)
        page.before = try store.auditLog(limit: 2).last?.id
        r.expect(try store.auditEntries(page).map(\.target) == ["案件 #2", "案件 #1"], "the next page is older")
        var byText = AuditFilter()
        byText.text = "#3"
        r.expect(try store.auditEntries(byText).map(\.target) == ["案件 #3"], "filtered by text")
        var byUser = AuditFilter()
        byUser.username = "nobody"
        r.expect(try store.auditEntries(byUser).isEmpty, "filtered by user")
    }

    func deliveryAlerts(_ store: any HubStore, _ r: inout Recorder) throws {
        try store.raiseFeedAlert(source: "claims", period: "2026-10", kind: "late", message: "迟到")
        try store.raiseFeedAlert(source: "claims", period: "2026-10", kind: "late", message: "迟到")
        try store.raiseFeedAlert(source: "claims", period: "2026-10", kind: "empty", message: "空")
        let alerts = try store.feedAlerts(limit: 10)
        r.expect(alerts.count == 2 && alerts.first?.kind == "empty", "once per source, period and kind, newest first: \(alerts.map(\.kind))")
        let m = try store.metricsSnapshot(today: .today)
        r.expect(m.feedAlerts.map(\.count).reduce(0, +) == 2, "counted in the metrics snapshot")
    }
}
