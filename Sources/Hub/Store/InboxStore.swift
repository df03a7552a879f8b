/// The inbox's store: the cases a user may see, what the case page shows, the county's
/// counts. Every query is scoped by the user (a township verifier sees only their townships).
/// Every implementation passes `StoreConformance` (HubTesting).
public protocol InboxStore: AnyObject, Sendable {
    /// A page of the cases a user may see: open ones first, each by deadline and then id.
    func cases(for user: User, filter: CaseFilter, today: CivilDate) throws -> [CaseSummary]
    /// How many cases the filter selects in the user's scope (for paging).
    func caseCount(for user: User, filter: CaseFilter, today: CivilDate) throws -> Int
    /// Counts and the choices of the inbox's filters over everything the user may see.
    func inboxOverview(for user: User, today: CivilDate) throws -> InboxOverview
    /// A case with everything the case page shows, or nil when it does not exist (the caller
    /// checks the user may see it).
    func caseDetail(_ id: Int64) throws -> CaseDetail?
    /// The latest visit of each of these cases.
    func latestVisits(of caseIDs: [Int64]) throws -> [Int64: CaseDetail.Visit]
    /// Counts for the county dashboard over the cases the user sees.
    func dashboard(for user: User, today: CivilDate) throws -> Dashboard
    /// Per township ("" for the dispatch queue): cases opened at or after `openedSince` (an
    /// ISO 8601 time as cases store it), open ones, and open ones past their deadline — the
    /// numbers a notification digest carries, nothing about anyone.
    func caseCounts(openedSince: String, today: CivilDate) throws -> [TownshipCounts]
    /// Township and village names by code, from the roster.
    func regionNames() throws -> [String: String]
    /// A number that moves whenever anything a user's inbox shows may have changed (their
    /// townships' cases, or the roster the names come from): what caches are keyed by.
    func inboxVersion(for user: User) throws -> Int
    /// Moves on with every successful pull.
    func rosterVersion() throws -> Int
    /// Whether a call mostly waits on a server's round trip: the web then runs many calls at once
    /// (an embedded store's calls are CPU work, best run one per core).
    var callsWaitOnNetwork: Bool { get }
}

extension InboxStore {
    public var callsWaitOnNetwork: Bool { false }
}

/// Counts for the county dashboard.
public struct Dashboard: Sendable {
    public var byTownship: [(code: String, name: String, open: Int, overdue: Int, closed: Int, monitored: Int)]
    public var byRule: [(rule: String, title: String, cases: Int, confirmed: Int, rejected: Int)]
    public var byPeriod: [(period: String, raised: Int, closed: Int)]
    public init(byTownship: [(code: String, name: String, open: Int, overdue: Int, closed: Int, monitored: Int)],
                byRule: [(rule: String, title: String, cases: Int, confirmed: Int, rejected: Int)],
                byPeriod: [(period: String, raised: Int, closed: Int)]) {
        self.byTownship = byTownship; self.byRule = byRule; self.byPeriod = byPeriod
    }
}

/// What a township's digest says.
public struct TownshipCounts: Sendable, Hashable {
    public var code: String
    public var name: String
    public var new: Int
    public var open: Int
    public var overdue: Int
    public init(code: String, name: String, new: Int, open: Int, overdue: Int) {
        self.code = code; self.name = name; self.new = new; self.open = open; self.overdue = overdue
    }
}

extension User {
    /// What the user's scope is cached by: `*` for everything, else their area's codes.
    public var scopeKey: String {
        switch caseScope {
        case .everything: return "*"
        case .nothing: return "-"
        case .area: return townships.sorted().joined(separator: ",")
        }
    }
}

/// One case (案件) as the inbox lists it.
public struct CaseSummary: Sendable, Hashable {
    public var id: Int64
    public var period: String
    public var householdID: String?
    public var subjectKind: Rule.Subject
    public var subjectID: String
    public var townshipCode: String?
    public var villageCode: String?
    public var township: String?
    public var village: String?
    public var severity: Rule.Severity
    public var status: CaseStatus
    public var deadline: String
    public var openedAt: String
    public var outcome: String?
    public var closedAt: String?
    public var rules: [String]
    public var titles: [String]
    /// The head of the household (户主) for a household case, the person's name otherwise.
    public var subjectName: String? = nil

    public init(id: Int64, period: String, householdID: String?, subjectKind: Rule.Subject, subjectID: String, townshipCode: String?,
                villageCode: String?, township: String?, village: String?, severity: Rule.Severity, status: CaseStatus, deadline: String,
                openedAt: String, outcome: String?, closedAt: String?, rules: [String], titles: [String], subjectName: String? = nil) {
        self.id = id; self.period = period; self.householdID = householdID; self.subjectKind = subjectKind; self.subjectID = subjectID
        self.townshipCode = townshipCode; self.villageCode = villageCode; self.township = township; self.village = village
        self.severity = severity; self.status = status; self.deadline = deadline; self.openedAt = openedAt; self.outcome = outcome
        self.closedAt = closedAt; self.rules = rules; self.titles = titles; self.subjectName = subjectName
    }

    public func isOverdue(today: CivilDate) -> Bool { status == .open && deadline < today.description }
}

public struct CaseFilter: Sendable {
    /// The most cases one page may hold.
    public static let maxLimit = 500
    public var rule: String?
    public var village: String?
    public var status: CaseStatus?
    public var severity: Rule.Severity?
    public var overdueOnly = false
    public var period: String?
    public var township: String?
    /// A name (户主 or any member, or a person outside the roster), a 户编号, or an ID number
    /// whole or by its last digits (at least 4).
    public var search: String?
    /// Only cases routed to no township: the county's dispatch queue (待分派).
    public var awaitingDispatch = false
    /// Cases per page (the store caps it at `CaseFilter.maxLimit`).
    public var limit = 50
    /// Cases to skip (paging).
    public var offset = 0
    public init() {}
    /// Identifies the filter in caches.
    public var cacheKey: String {
        [rule ?? "", village ?? "", status?.rawValue ?? "", severity?.rawValue ?? "", overdueOnly ? "1" : "0", period ?? "", township ?? "", search ?? "", awaitingDispatch ? "1" : "0", String(limit), String(offset)].joined(separator: "\u{1F}")
    }
}

/// What the inbox shows above its list: counts and the choices of its filters, over
/// everything the user may see.
public struct InboxOverview: Sendable {
    public var open = 0
    public var overdue = 0
    public var closed = 0
    /// Rules that raised alerts in the user's scope, by name, with their titles.
    public var rules: [(name: String, title: String)] = []
    /// Villages with cases in the user's scope: code and name.
    public var villages: [(code: String, name: String)] = []
    public init() {}
}

public struct CaseDetail: Sendable {
    public struct AlertInfo: Sendable {
        public var rule: String, title: String, severity: Rule.Severity, message: String, evidence: [Evidence], raisedAt: String, ruleVersion: String, mappingVersions: String
        public init(rule: String, title: String, severity: Rule.Severity, message: String, evidence: [Evidence], raisedAt: String, ruleVersion: String, mappingVersions: String) {
            self.rule = rule; self.title = title; self.severity = severity; self.message = message; self.evidence = evidence
            self.raisedAt = raisedAt; self.ruleVersion = ruleVersion; self.mappingVersions = mappingVersions
        }
    }
    public struct Event: Sendable {
        public var at: String, username: String, action: String, detail: String
        public init(at: String, username: String, action: String, detail: String) { self.at = at; self.username = username; self.action = action; self.detail = detail }
    }
    public struct Visit: Sendable {
        public var visitedOn: String, visitors: String, findings: String, outcome: VisitOutcome, monitoringType: String?, reason: String?, recordedBy: String, recordedAt: String
        public init(visitedOn: String, visitors: String, findings: String, outcome: VisitOutcome, monitoringType: String?, reason: String?, recordedBy: String, recordedAt: String) {
            self.visitedOn = visitedOn; self.visitors = visitors; self.findings = findings; self.outcome = outcome
            self.monitoringType = monitoringType; self.reason = reason; self.recordedBy = recordedBy; self.recordedAt = recordedAt
        }
    }
    public var summary: CaseSummary
    public var household: [String: Value]?
    public var members: [[String: Value]]
    public var alerts: [AlertInfo]
    public var visits: [Visit]
    public var events: [Event]
    public init(summary: CaseSummary, household: [String: Value]?, members: [[String: Value]], alerts: [AlertInfo], visits: [Visit], events: [Event]) {
        self.summary = summary; self.household = household; self.members = members; self.alerts = alerts; self.visits = visits; self.events = events
    }
}


extension InboxStore {
    public func cases(for user: User) throws -> [CaseSummary] { try cases(for: user, filter: CaseFilter(), today: .today) }
    public func cases(for user: User, filter: CaseFilter) throws -> [CaseSummary] { try cases(for: user, filter: filter, today: .today) }
    public func inboxOverview(for user: User) throws -> InboxOverview { try inboxOverview(for: user, today: .today) }
}
