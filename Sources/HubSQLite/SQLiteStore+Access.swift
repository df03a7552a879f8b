import Foundation
internal import GRDB
import Hub

// Users, sessions and the audit log.
extension SQLiteStore {
    public func addUser(_ user: NewUser, passwordHash: String) throws -> User {
        try pool.write { db in
            if try Row.fetchOne(db, sql: "SELECT 1 FROM users WHERE username = ?", arguments: [user.username]) != nil {
                throw AccessError("用户 \(user.username) 已存在")
            }
            try db.execute(sql: "INSERT INTO users (username, display_name, role, townships, password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [user.username, user.displayName, user.role.rawValue, user.townships.joined(separator: ","), passwordHash, Self.now()])
            return User(id: db.lastInsertedRowID, username: user.username, displayName: user.displayName, role: user.role, townships: user.townships)
        }
    }

    public func users() throws -> [User] {
        try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM users ORDER BY id").map(Self.user) }
    }

    static func user(_ r: Row) -> User {
        User(id: r["id"], username: r["username"], displayName: r["display_name"], role: Role(rawValue: r["role"]) ?? .verifier,
             townships: (r["townships"] as String).split(separator: ",").map(String.init))
    }

    public func credentials(username: String) throws -> Credentials? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM users WHERE username = ? AND active = 1", arguments: [username]).map {
                Credentials(user: Self.user($0), passwordHash: $0["password_hash"], failedLogins: $0["failed_logins"], lockedUntil: $0["locked_until"])
            }
        }
    }

    @discardableResult
    public func recordFailedLogin(userID: Int64, maxFailures: Int, lockUntil: String) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = ?", arguments: [userID])
            let failures = try Int.fetchOne(db, sql: "SELECT failed_logins FROM users WHERE id = ?", arguments: [userID]) ?? 0
            guard failures >= maxFailures else { return false }
            try db.execute(sql: "UPDATE users SET failed_logins = 0, locked_until = ? WHERE id = ?", arguments: [lockUntil, userID])
            return true
        }
    }

    public func startSession(userID: Int64, tokenHash: String, csrf: String, createdAt: String, expiresAt: String) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = ?", arguments: [userID])
            try db.execute(sql: "DELETE FROM sessions WHERE expires_at < ?", arguments: [createdAt])
            try db.execute(sql: "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [tokenHash, userID, csrf, createdAt, expiresAt])
        }
    }

    public func session(tokenHash: String, now: String) throws -> (user: User, csrf: String)? {
        try pool.read { db in
            // Every page asks: the statement is prepared once per connection.
            let statement = try db.cachedStatement(sql: """
                SELECT u.*, s.csrf FROM sessions s JOIN users u ON u.id = s.user_id
                WHERE s.token_hash = ? AND s.expires_at > ? AND u.active = 1
                """)
            guard let r = try Row.fetchOne(statement, arguments: [tokenHash, now]) else { return nil }
            return (Self.user(r), r["csrf"])
        }
    }

    public func accounts() throws -> [Account] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM users ORDER BY id").map { Account(user: Self.user($0), active: ($0["active"] as Int) == 1, lockedUntil: $0["locked_until"]) }
        }
    }

    public func changeAccount(username: String, _ change: AccountChange) throws {
        try pool.write { db in
            guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM users WHERE username = ?", arguments: [username]) else {
                throw AccessError("用户 \(username) 不存在")
            }
            switch change {
            case .disable:
                try db.execute(sql: "UPDATE users SET active = 0 WHERE id = ?", arguments: [id])
                try db.execute(sql: "DELETE FROM sessions WHERE user_id = ?", arguments: [id])
            case .enable:
                try db.execute(sql: "UPDATE users SET active = 1 WHERE id = ?", arguments: [id])
            case .unlock:
                try db.execute(sql: "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = ?", arguments: [id])
            case .password(let hash):
                try db.execute(sql: "UPDATE users SET password_hash = ?, failed_logins = 0, locked_until = NULL WHERE id = ?", arguments: [hash, id])
                try db.execute(sql: "DELETE FROM sessions WHERE user_id = ?", arguments: [id])
            }
        }
    }

    public func endSession(tokenHash: String) throws {
        try pool.write { db in try db.execute(sql: "DELETE FROM sessions WHERE token_hash = ?", arguments: [tokenHash]) }
    }

    public func append(_ event: AuditEvent) throws {
        try pool.write { db in
            let prev = try String.fetchOne(db, sql: "SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1") ?? ""
            try db.execute(sql: "INSERT INTO audit_log (at, username, action, target, detail, address, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           arguments: [event.at, event.username, event.action, event.target, event.detail, event.address, prev, AuditChain.hash(prev: prev, event)])
        }
    }

    static func auditEntry(_ r: Row) -> AuditEntry {
        AuditEntry(id: r["id"], event: AuditEvent(at: r["at"], username: r["username"], action: r["action"], target: r["target"], detail: r["detail"], address: r["address"]),
                   prevHash: r["prev_hash"], hash: r["hash"])
    }

    public func auditEntries(_ f: AuditFilter) throws -> [AuditEntry] {
        var sql = "SELECT * FROM audit_log WHERE 1 = 1"
        var args: [any DatabaseValueConvertible] = []
        if let u = f.username, !u.isEmpty { sql += " AND username = ?"; args.append(u) }
        if let a = f.action, !a.isEmpty { sql += " AND action = ?"; args.append(a) }
        if let t = f.text, !t.isEmpty {
            let like = "%" + t.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_") + "%"
            sql += " AND (target LIKE ? ESCAPE '\\' OR detail LIKE ? ESCAPE '\\')"; args += [like, like]
        }
        if let b = f.before { sql += " AND id < ?"; args.append(b) }
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(max(0, min(f.limit, 1000)))
        return try pool.read { db in try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args)).map(Self.auditEntry) }
    }

    public func forEachAuditEntry(_ body: (AuditEntry) throws -> Void) throws {
        try pool.read { db in
            let rows = try Row.fetchCursor(db, sql: "SELECT * FROM audit_log ORDER BY id")
            while let r = try rows.next() { try body(Self.auditEntry(r)) }
        }
    }
}
