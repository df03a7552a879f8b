import Foundation
import Hub

// Users, sessions, the audit log, delivery alerts and the metrics snapshot.
extension PostgresStore {
    public func addUser(_ user: NewUser, passwordHash: String) throws -> User {
        try pool.write { c in
            guard let r = try c.one("""
                INSERT INTO users (username, display_name, role, townships, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (username) DO NOTHING RETURNING id
                """, [.text(user.username), .text(user.displayName), .text(user.role.rawValue), .text(user.townships.joined(separator: ",")),
                      .text(passwordHash), .text(Self.now())]) else { throw AccessError("用户 \(user.username) 已存在") }
            return User(id: r.int64("id")!, username: user.username, displayName: user.displayName, role: user.role, townships: user.townships)
        }
    }

    static func user(_ r: PGRow) -> User {
        User(id: r.int64("id")!, username: r.text("username"), displayName: r.text("display_name"), role: Role(rawValue: r.text("role")) ?? .verifier,
             townships: r.text("townships").split(separator: ",").map(String.init))
    }

    public func users() throws -> [User] {
        try pool.read { c in try c.query("SELECT * FROM users ORDER BY id").map(Self.user) }
    }

    public func credentials(username: String) throws -> Credentials? {
        try pool.read { c in
            try c.one("SELECT * FROM users WHERE username = $1 AND active", [.text(username)]).map {
                Credentials(user: Self.user($0), passwordHash: $0.text("password_hash"), failedLogins: $0.int("failed_logins"), lockedUntil: $0.string("locked_until"))
            }
        }
    }

    @discardableResult
    public func recordFailedLogin(userID: Int64, maxFailures: Int, lockUntil: String) throws -> Bool {
        try pool.write { c in
            // One statement: simultaneous wrong guesses from several workers each count.
            let failures = try c.one("UPDATE users SET failed_logins = failed_logins + 1 WHERE id = $1 RETURNING failed_logins", [.int(userID)])?.int("failed_logins") ?? 0
            guard failures >= maxFailures else { return false }
            try c.execute("UPDATE users SET failed_logins = 0, locked_until = $1 WHERE id = $2", [.text(lockUntil), .int(userID)])
            return true
        }
    }

    public func startSession(userID: Int64, tokenHash: String, csrf: String, createdAt: String, expiresAt: String) throws {
        try pool.write { c in
            try c.execute("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1", [.int(userID)])
            try c.execute("DELETE FROM sessions WHERE expires_at < $1", [.text(createdAt)])
            try c.execute("INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                          [.text(tokenHash), .int(userID), .text(csrf), .text(createdAt), .text(expiresAt)])
        }
    }

    public func session(tokenHash: String, now: String) throws -> (user: User, csrf: String)? {
        try pool.withConnection { c in
            guard let r = try c.one("""
                SELECT u.*, s.csrf FROM sessions s JOIN users u ON u.id = s.user_id
                WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.active
                """, [.text(tokenHash), .text(now)]) else { return nil }
            return (Self.user(r), r.text("csrf"))
        }
    }

    public func endSession(tokenHash: String) throws {
        try pool.write { c in try c.execute("DELETE FROM sessions WHERE token_hash = $1", [.text(tokenHash)]) }
    }

    public func accounts() throws -> [Account] {
        try pool.read { c in
            try c.query("SELECT * FROM users ORDER BY id").map { Account(user: Self.user($0), active: $0.bool("active"), lockedUntil: $0.string("locked_until")) }
        }
    }

    public func changeAccount(username: String, _ change: AccountChange) throws {
        try pool.write { c in
            guard let id = try c.one("SELECT id FROM users WHERE username = $1 FOR UPDATE", [.text(username)])?.int64("id") else {
                throw AccessError("用户 \(username) 不存在")
            }
            switch change {
            case .disable:
                try c.execute("UPDATE users SET active = false WHERE id = $1", [.int(id)])
                try c.execute("DELETE FROM sessions WHERE user_id = $1", [.int(id)])
            case .enable:
                try c.execute("UPDATE users SET active = true WHERE id = $1", [.int(id)])
            case .unlock:
                try c.execute("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1", [.int(id)])
            case .password(let hash):
                try c.execute("UPDATE users SET password_hash = $1, failed_logins = 0, locked_until = NULL WHERE id = $2", [.text(hash), .int(id)])
                try c.execute("DELETE FROM sessions WHERE user_id = $1", [.int(id)])
            }
        }
    }

    // MARK: Audit

    public func append(_ event: AuditEvent) throws {
        try pool.write { c in
            // Workers append one at a time, each linking to the entry before it.
            try c.execute("SELECT pg_advisory_xact_lock(4801004)")
            let prev = try c.one("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")?.text("hash") ?? ""
            try c.execute("INSERT INTO audit_log (at, username, action, target, detail, address, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                          [.text(event.at), .text(event.username), .text(event.action), .text(event.target), .text(event.detail),
                           .text(event.address), .text(prev), .text(AuditChain.hash(prev: prev, event))])
        }
    }

    static func auditEntry(_ r: PGRow) -> AuditEntry {
        AuditEntry(id: r.int64("id")!, event: AuditEvent(at: r.text("at"), username: r.text("username"), action: r.text("action"), target: r.text("target"),
                                                        detail: r.text("detail"), address: r.text("address")),
                   prevHash: r.text("prev_hash"), hash: r.text("hash"))
    }

    public func auditEntries(_ f: AuditFilter) throws -> [AuditEntry] {
        var sql = "SELECT * FROM audit_log WHERE true"
        var binds: [PGValue] = []
        func bind(_ v: PGValue) -> String { binds.append(v); return "$\(binds.count)" }
        if let u = f.username, !u.isEmpty { sql += " AND username = \(bind(.text(u)))" }
        if let a = f.action, !a.isEmpty { sql += " AND action = \(bind(.text(a)))" }
        if let t = f.text, !t.isEmpty {
            let like = bind(.text("%" + t.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_") + "%"))
            sql += " AND (target ILIKE \(like) OR detail ILIKE \(like))"
        }
        if let b = f.before { sql += " AND id < \(bind(.int(b)))" }
        sql += " ORDER BY id DESC LIMIT \(bind(.int(max(0, min(f.limit, 1000)))))"
        return try pool.read { c in try c.query(sql, binds).map(Self.auditEntry) }
    }

    public func forEachAuditEntry(_ body: (AuditEntry) throws -> Void) throws {
        try pool.read { c in
            try c.forEach("SELECT * FROM audit_log ORDER BY id") { try body(Self.auditEntry($0)); return true }
        }
    }

    // MARK: Delivery alerts and metrics

    public func raiseFeedAlert(source: String, period: String, kind: String, message: String) throws {
        try pool.write { c in
            try c.execute("INSERT INTO feed_alerts (source, period, kind, message, raised_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                          [.text(source), .text(period), .text(kind), .text(message), .text(Self.now())])
        }
    }

    public func feedAlerts(limit: Int) throws -> [FeedAlert] {
        try pool.read { c in
            try c.query("SELECT * FROM feed_alerts ORDER BY id DESC LIMIT $1", [.int(limit)]).map {
                FeedAlert(source: $0.text("source"), period: $0.text("period"), kind: $0.text("kind"), message: $0.text("message"), raisedAt: $0.text("raised_at"))
            }
        }
    }

    public func metricsSnapshot(today: CivilDate) throws -> MetricsSnapshot {
        try pool.read { c in
            var m = MetricsSnapshot()
            m.runs = try c.query("""
                SELECT source, status, count(*) AS n, sum(rows_read)::bigint AS read, sum(inserted + updated + unchanged)::bigint AS stored,
                       sum(quarantined)::bigint AS q
                FROM runs GROUP BY source, status ORDER BY source, status
                """).map {
                MetricsSnapshot.Runs(source: $0.text("source"), status: RunStatus(rawValue: $0.text("status")) ?? .failed, count: $0.int("n"),
                                     read: $0.int("read"), stored: $0.int("stored"), quarantined: $0.int("q"))
            }
            m.lastRunSeconds = try c.query("""
                SELECT source, extract(epoch FROM (finished_at::timestamptz - started_at::timestamptz))::double precision AS secs FROM runs
                WHERE id IN (SELECT max(id) FROM runs WHERE finished_at IS NOT NULL GROUP BY source) ORDER BY source
                """).map { ($0.text("source"), $0.double("secs") ?? 0) }
            m.alertsByRule = try c.query("SELECT rule, count(*) AS n FROM alerts GROUP BY rule ORDER BY rule").map { ($0.text("rule"), $0.int("n")) }
            m.cases = try c.query("""
                SELECT coalesce(township_code, '') AS t, count(*) FILTER (WHERE status = 'open') AS open,
                       count(*) FILTER (WHERE status = 'open' AND deadline < $1) AS overdue
                FROM cases GROUP BY 1 ORDER BY 1
                """, [.text(today.description)]).map { MetricsSnapshot.Township(code: $0.text("t"), open: $0.int("open"), overdue: $0.int("overdue")) }
            m.feedAlerts = try c.query("SELECT source, kind, count(*) AS n FROM feed_alerts GROUP BY source, kind ORDER BY source, kind")
                .map { ($0.text("source"), $0.text("kind"), $0.int("n")) }
            return m
        }
    }
}
