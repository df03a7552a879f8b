/// Users and sessions. Sessions live in the store, so any process serving the web over the
/// same store knows them. Passwords reach the store only as hashes, tokens only as digests.
/// Every implementation passes `StoreConformance` (HubTesting).
public protocol AccessStore: AnyObject, Sendable {
    /// Adds a user (checked first with `AccessPolicy.check`); throws `AccessError` when the name is taken.
    func addUser(_ user: NewUser, passwordHash: String) throws -> User
    func users() throws -> [User]
    /// An active user's credentials and lockout state, by user name.
    func credentials(username: String) throws -> Credentials?
    /// After a wrong password: counts it in one step (simultaneous guesses each count); when the
    /// count reaches `maxFailures` the account is locked until `lockUntil` and the count starts
    /// again. Returns whether this failure locked it.
    @discardableResult
    func recordFailedLogin(userID: Int64, maxFailures: Int, lockUntil: String) throws -> Bool
    /// Starts a session (clearing the user's failed logins and every expired session).
    func startSession(userID: Int64, tokenHash: String, csrf: String, createdAt: String, expiresAt: String) throws
    /// The user and CSRF token of a session that has not expired at `now` (both ISO 8601 UTC).
    func session(tokenHash: String, now: String) throws -> (user: User, csrf: String)?
    func endSession(tokenHash: String) throws
    /// Every account with whether it is active and until when it is locked (nil: not locked).
    func accounts() throws -> [Account]
    /// Changes an account in one step; disabling it or setting its password also ends its
    /// sessions, and a new password or an unlock clears its failed logins. Throws `AccessError`
    /// when there is no such user.
    func changeAccount(username: String, _ change: AccountChange) throws
}

/// An account as the administrator sees it.
public struct Account: Sendable {
    public var user: User
    public var active: Bool
    public var lockedUntil: String?
    public init(user: User, active: Bool, lockedUntil: String?) { self.user = user; self.active = active; self.lockedUntil = lockedUntil }
}

/// What an administrator does to an account.
public enum AccountChange: Sendable {
    case disable, enable, unlock
    case password(hash: String)
}

/// A user to add.
public struct NewUser: Sendable {
    public var username: String
    public var displayName: String
    public var role: Role
    public var townships: [String]
    public init(username: String, displayName: String, role: Role, townships: [String]) {
        self.username = username; self.displayName = displayName; self.role = role; self.townships = townships
    }
}

/// What signing in checks.
public struct Credentials: Sendable {
    public var user: User
    public var passwordHash: String
    public var failedLogins: Int
    /// ISO 8601 UTC, while the account is locked.
    public var lockedUntil: String?
    public init(user: User, passwordHash: String, failedLogins: Int, lockedUntil: String?) {
        self.user = user; self.passwordHash = passwordHash; self.failedLogins = failedLogins; self.lockedUntil = lockedUntil
    }
}

/// The audit log: append-only, each entry's hash covering the previous one (`AuditChain`).
/// Every implementation passes `StoreConformance` (HubTesting).
public protocol AuditStore: AnyObject, Sendable {
    /// Appends an entry, linked to the newest one, atomically.
    func append(_ event: AuditEvent) throws
    /// The newest entries first that the filter selects (a page of at most `filter.limit`).
    func auditEntries(_ filter: AuditFilter) throws -> [AuditEntry]
    /// Every entry, oldest first, with its links (for verification).
    func forEachAuditEntry(_ body: (AuditEntry) throws -> Void) throws
}

/// Which audit entries to list: by user, by action, by text in the target or detail, and a page
/// of entries older than `before` (an entry id), newest first.
public struct AuditFilter: Sendable {
    public var username: String?
    public var action: String?
    public var text: String?
    public var before: Int64?
    public var limit = 200
    public init(limit: Int = 200) { self.limit = limit }
}

extension AuditStore {
    /// The newest `limit` entries.
    public func auditLog(limit: Int = 200) throws -> [AuditEntry] { try auditEntries(AuditFilter(limit: limit)) }
}

/// Late, empty, shrunken or failed deliveries, for operators (separate from household cases).
public protocol DeliveryStore: AnyObject, Sendable {
    /// Raises a delivery alert once per (source, period, kind).
    func raiseFeedAlert(source: String, period: String, kind: String, message: String) throws
    /// The newest first.
    func feedAlerts(limit: Int) throws -> [FeedAlert]
}

public struct FeedAlert: Sendable, Hashable {
    public var source: String, period: String, kind: String, message: String, raisedAt: String
    public init(source: String, period: String, kind: String, message: String, raisedAt: String) {
        self.source = source; self.period = period; self.kind = kind; self.message = message; self.raisedAt = raisedAt
    }
}

/// Totals for monitoring (`/metrics`): counts only, no personal data.
public protocol MetricsStore: AnyObject, Sendable {
    func metricsSnapshot(today: CivilDate) throws -> MetricsSnapshot
}

public struct MetricsSnapshot: Sendable {
    public struct Runs: Sendable { public var source: String, status: RunStatus, count: Int, read: Int, stored: Int, quarantined: Int
        public init(source: String, status: RunStatus, count: Int, read: Int, stored: Int, quarantined: Int) {
            self.source = source; self.status = status; self.count = count; self.read = read; self.stored = stored; self.quarantined = quarantined
        }
    }
    public struct Township: Sendable { public var code: String, open: Int, overdue: Int
        public init(code: String, open: Int, overdue: Int) { self.code = code; self.open = open; self.overdue = overdue }
    }
    /// Per source and outcome.
    public var runs: [Runs] = []
    /// Each source's latest finished run, in seconds.
    public var lastRunSeconds: [(source: String, seconds: Double)] = []
    public var alertsByRule: [(rule: String, count: Int)] = []
    public var cases: [Township] = []
    public var feedAlerts: [(source: String, kind: String, count: Int)] = []
    public init() {}
}

/// Everything the hub keeps, as one store: what `hubd` opens and hands to each stage, which
/// then sees only the protocol of its own stage.
///
/// The protocols are synchronous on purpose. The pull pipeline and rule evaluation are
/// thread-based (a decoding thread and a writing thread joined by a bounded queue; an
/// evaluating thread and a writing thread), and a transaction spans a whole run, so the
/// writer must hold it on one thread. Async callers (the web) call the store on a thread pool
/// made for blocking work (`BlockingPool` in HubWeb), never on Swift's cooperative pool. A
/// store over an async client (PostgreSQL through postgres-nio) blocks its caller's thread on
/// the client's event loop the same way.
public typealias HubStore = RecordStore & RuleReadingStore & CaseStore & InboxStore & AccessStore & AuditStore & DeliveryStore & MetricsStore

extension DeliveryStore {
    public func feedAlerts() throws -> [FeedAlert] { try feedAlerts(limit: 100) }
}
