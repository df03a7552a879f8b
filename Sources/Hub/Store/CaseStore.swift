/// The case stage's store: alerts merged into cases, and the changes people make to cases.
/// The rules of merging, routing and withdrawal are Swift (`CaseMerger`, in Cases/); a store
/// only offers the steps, inside one transaction. Every implementation passes
/// `StoreConformance` (HubTesting).
public protocol CaseStore: AnyObject, Sendable {
    /// Runs `body` with a ledger inside one write transaction: all of it is stored or, when
    /// anything throws, none of it. `evaluatedRun` is marked evaluated in the same transaction
    /// (see `RecordStore.runsAwaitingRules`). The inboxes' change counters move once, at the end.
    func writingCases<T>(evaluatedRun: Int64?, _ body: (any CaseLedger) throws -> T) throws -> T
    /// Records a home visit and closes the case (销号), atomically: throws
    /// `CaseChangeError.notFound` or `.notOpen` when the case cannot take it.
    func closeCase(_ id: Int64, visit: VisitRecord, event: CaseEvent) throws
    /// Reopens a closed case with a new deadline: throws `.notFound` or `.notClosed`.
    func reopenCase(_ id: Int64, deadline: CivilDate, event: CaseEvent) throws
    /// Routes an open case (and its alerts) to a township — the county's dispatch of a case
    /// no roster or record could place, or a correction — keeping its village only when it lies
    /// in that township: throws `.notFound` or `.notOpen`.
    func assignCase(_ id: Int64, township: String, event: CaseEvent) throws
    /// Keeps a photo with its case (already checked by `PhotoSanitizer`): throws `.notFound`.
    func addPhoto(_ photo: NewPhoto) throws -> Int64
    /// A case's photos, oldest first, without their bytes.
    func photos(ofCase id: Int64) throws -> [PhotoInfo]
    /// One photo with its bytes (the caller checks the user may see its case).
    func photo(_ id: Int64) throws -> (info: PhotoInfo, bytes: [UInt8])?
    /// Every alert of a period, by case and then rule, one at a time (exports).
    func forEachAlert(period: String, _ body: (AlertRow) throws -> Void) throws
    func alertCount(period: String) throws -> Int
}

/// The steps of storing one rule evaluation, inside `CaseStore.writingCases`.
public protocol CaseLedger: AnyObject {
    /// Run id → `source@mapping version`, for each alert's provenance.
    func mappingVersions() throws -> [Int64: String]
    /// The stored alerts of these subjects for a rule and period, by subject.
    func alerts(rule: String, subjectKind: Rule.Subject, period: String, subjects: [String]) throws -> [String: StoredAlert]
    /// The cases with these keys in a period, by key.
    func cases(keys: [String], period: String) throws -> [String: (id: Int64, severity: Rule.Severity)]
    func insertCase(_ c: NewCase) throws -> Int64
    func setSeverity(_ severity: Rule.Severity, ofCase id: Int64) throws
    func insertAlert(_ a: Alert, evidence: String, mappingVersions: String, caseID: Int64, at: String) throws -> Int64
    /// New message and evidence for an alert that stays in its case.
    func updateAlert(_ id: Int64, message: String, evidence: String, ruleVersion: String, mappingVersions: String, at: String) throws
    /// An alert moved to another case (its subject is now routed elsewhere), with its new routing.
    func moveAlert(_ id: Int64, to caseID: Int64, as a: Alert, evidence: String, mappingVersions: String, at: String) throws
    func deleteAlert(_ id: Int64) throws
    /// Deletes the case when no alert is left in it; whether it did.
    func deleteCaseIfEmpty(_ id: Int64) throws -> Bool
    /// Marks townships whose inboxes this evaluation changed ("" for unrouted cases).
    func touch(townships: Set<String>)
}

/// An alert as stored, as the merger needs it.
public struct StoredAlert: Sendable {
    public var id: Int64
    public var message: String
    public var evidence: String
    public var caseID: Int64
    public var caseKey: String
    /// Open, no visit and no event: nobody has worked on its case yet.
    public var unworked: Bool
    public init(id: Int64, message: String, evidence: String, caseID: Int64, caseKey: String, unworked: Bool) {
        self.id = id; self.message = message; self.evidence = evidence; self.caseID = caseID; self.caseKey = caseKey; self.unworked = unworked
    }
}

/// A case to open.
public struct NewCase: Sendable {
    public var key: String
    public var period: String
    public var householdID: String?
    public var subjectKind: Rule.Subject
    public var subjectID: String
    public var townshipCode: String?
    public var villageCode: String?
    public var severity: Rule.Severity
    public var openedAt: String
    public var deadline: CivilDate
    /// The person's name for a case outside the roster (a household case's name is its head's,
    /// read from the roster when shown).
    public var subjectName: String? = nil
}

/// One entry of a case's history.
public struct CaseEvent: Sendable {
    public var at: String
    public var username: String
    public var action: String
    public var detail: String
    public init(at: String = Timestamp.now(), username: String, action: String, detail: String) {
        self.at = at; self.username = username; self.action = action; self.detail = detail
    }
}

/// One alert as exported (`hubd alerts export`).
public struct AlertRow: Sendable {
    public var rule: String, title: String, severity: String, subjectKind: String, subjectID: String
    public var householdID: String?, townshipCode: String?, villageCode: String?
    public var caseID: Int64, message: String, raisedAt: String
    public init(rule: String, title: String, severity: String, subjectKind: String, subjectID: String, householdID: String?,
                townshipCode: String?, villageCode: String?, caseID: Int64, message: String, raisedAt: String) {
        self.rule = rule; self.title = title; self.severity = severity; self.subjectKind = subjectKind; self.subjectID = subjectID
        self.householdID = householdID; self.townshipCode = townshipCode; self.villageCode = villageCode
        self.caseID = caseID; self.message = message; self.raisedAt = raisedAt
    }
}
