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
    /// The first alerts raised and withdrawn (up to `AlertTotals.listed` of each), ID numbers
    /// masked: what an operator reads after a department's late correction of a past month.
    public var raisedList: [AlertChange] = []
    public var withdrawnList: [AlertChange] = []
    public static let listed = 20
    public init() {}
}

/// One alert raised or withdrawn by an evaluation, as listed to operators.
public struct AlertChange: Sendable, Equatable {
    public var rule: String
    public var subject: String
    public var message: String
    public var text: String { "\(rule) \(subject)：\(message)" }
}

/// Merges a rule evaluation's alerts into cases, chunk by chunk, through a store's
/// `CaseLedger` (one transaction): one alert per rule, subject and period; one case per
/// household and period, or per subject outside the roster; a case's severity is its highest
/// alert's; a new case is due `deadlineDays` after today. Only the chunk at hand is in memory:
/// what the store holds is looked up per chunk.
public final class CaseMerger {
    let ledger: any CaseLedger
    let now: String
    let deadline: CivilDate
    /// Run id → "source@mapping version", for each alert's provenance.
    let versions: [Int64: String]
    private var townships = Set<String>()
    public private(set) var totals = AlertTotals()
    /// Subjects looked up per query.
    static let lookupChunk = 500

    public init(ledger: any CaseLedger, deadlineDays: Int, today: CivilDate = .today, now: String = Timestamp.now()) throws {
        self.ledger = ledger
        self.now = now
        deadline = today.adding(days: deadlineDays)
        versions = try ledger.mappingVersions()
    }

    struct Existing { var id: Int64; var message: String; var evidence: UInt64; var caseID: Int64; var caseKey: String; var unworked: Bool }

    /// Stores one chunk of a rule's evaluation. With `withdraw`, an earlier alert of an evaluated
    /// subject that did not fire again is withdrawn while nobody has worked on its case (the
    /// roster arrived after the claims, a department corrected its file); its case goes with
    /// it when no other alert is left in it. Cases that someone has worked on are kept as they are.
    public func save(_ chunk: RuleChunk, withdraw: Bool) throws {
        totals.alerts += chunk.alerts.count
        totals.evaluated += chunk.evaluated.count
        totals.byRule[chunk.rule, default: 0] += chunk.alerts.count
        let subjects = Array(Set(chunk.evaluated).union(chunk.alerts.map(\.subjectID)))
        var existing: [String: Existing] = [:]
        for start in stride(from: 0, to: subjects.count, by: Self.lookupChunk) {
            let part = Array(subjects[start..<min(start + Self.lookupChunk, subjects.count)])
            for (subject, a) in try ledger.alerts(rule: chunk.rule, subjectKind: chunk.subjectKind, period: chunk.period, subjects: part) {
                existing[subject] = Existing(id: a.id, message: a.message, evidence: Hashing.fnv1a(a.evidence.utf8),
                                             caseID: a.caseID, caseKey: a.caseKey, unworked: a.unworked)
            }
        }
        if withdraw {
            let raised = Set(chunk.alerts.map(\.subjectID))
            for subject in chunk.evaluated where !raised.contains(subject) {
                guard let e = existing[subject], e.unworked else { continue }
                try ledger.deleteAlert(e.id)
                _ = try ledger.deleteCaseIfEmpty(e.caseID)
                totals.withdrawn += 1
                if totals.withdrawnList.count < AlertTotals.listed {
                    totals.withdrawnList.append(AlertChange(rule: chunk.rule, subject: ResidentID.maskEmbedded(subject), message: ResidentID.maskEmbedded(e.message)))
                }
            }
        }
        // The cases these alerts belong to.
        var cases: [String: (id: Int64, severity: Rule.Severity)] = [:]
        let caseKeys = Array(Set(chunk.alerts.map(\.caseKey)))
        for start in stride(from: 0, to: caseKeys.count, by: Self.lookupChunk) {
            let part = Array(caseKeys[start..<min(start + Self.lookupChunk, caseKeys.count)])
            cases.merge(try ledger.cases(keys: part, period: chunk.period)) { a, _ in a }
        }
        func caseFor(_ a: Alert) throws -> Int64 {
            if let c = cases[a.caseKey] {
                if a.severity.rank > c.severity.rank {
                    try ledger.setSeverity(a.severity, ofCase: c.id)
                    cases[a.caseKey] = (c.id, a.severity)
                }
                return c.id
            }
            let id = try ledger.insertCase(NewCase(
                key: a.caseKey, period: a.period, householdID: a.householdID, subjectKind: a.householdID != nil ? .household : a.subjectKind,
                subjectID: a.householdID ?? a.subjectID, townshipCode: a.townshipCode, villageCode: a.villageCode,
                severity: a.severity, openedAt: now, deadline: deadline, subjectName: a.householdID == nil ? a.subjectName : nil))
            totals.newCases += 1
            cases[a.caseKey] = (id, a.severity)
            return id
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
                    try ledger.moveAlert(e.id, to: target, as: a, evidence: evidence, mappingVersions: mappingVersions, at: now)
                    if try ledger.deleteCaseIfEmpty(e.caseID) { cases = cases.filter { $0.value.id != e.caseID } }
                    existing[a.subjectID] = Existing(id: e.id, message: a.message, evidence: evidenceHash, caseID: target, caseKey: a.caseKey, unworked: true)
                    totals.updated += 1
                } else if e.message != a.message || e.evidence != evidenceHash {
                    try ledger.updateAlert(e.id, message: a.message, evidence: evidence, ruleVersion: a.ruleVersion, mappingVersions: mappingVersions, at: now)
                    existing[a.subjectID]?.message = a.message
                    existing[a.subjectID]?.evidence = evidenceHash
                    totals.updated += 1
                }
                continue
            }
            let caseID = try caseFor(a)
            let id = try ledger.insertAlert(a, evidence: evidence, mappingVersions: mappingVersions, caseID: caseID, at: now)
            existing[a.subjectID] = Existing(id: id, message: a.message, evidence: evidenceHash, caseID: caseID, caseKey: a.caseKey, unworked: true)
            totals.newAlerts += 1
            if totals.raisedList.count < AlertTotals.listed {
                totals.raisedList.append(AlertChange(rule: a.rule, subject: ResidentID.maskEmbedded(a.subjectID), message: ResidentID.maskEmbedded(a.message)))
            }
        }
        ledger.touch(townships: townships)
    }
}

extension CaseStore {
    /// Runs `body` with a merger for one rule evaluation, in one transaction: all of it is
    /// stored, or (on an error) none of it. `evaluatedRun` is marked evaluated in the same transaction.
    public func storeAlerts(deadlineDays: Int = 15, evaluatedRun: Int64? = nil, _ body: (CaseMerger) throws -> Void) throws -> AlertTotals {
        try writingCases(evaluatedRun: evaluatedRun) { ledger in
            let merger = try CaseMerger(ledger: ledger, deadlineDays: deadlineDays)
            try body(merger)
            return merger.totals
        }
    }

    /// Stores a list of alerts (of any rules and periods) without withdrawing anything.
    /// Returns how many alerts and cases are new.
    @discardableResult
    public func saveAlerts(_ alerts: [Alert], deadlineDays: Int = 15) throws -> (newAlerts: Int, newCases: Int, updated: Int) {
        let totals = try storeAlerts(deadlineDays: deadlineDays) { merger in
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
            for c in chunks { try merger.save(c, withdraw: false) }
        }
        return (totals.newAlerts, totals.newCases, totals.updated)
    }
}
