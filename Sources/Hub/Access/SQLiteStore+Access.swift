import Foundation
internal import GRDB
import HummingbirdBcrypt

/// Users, sessions and the audit log.
extension SQLiteStore {
    public struct AccessError: Error, CustomStringConvertible {
        public var description: String
        init(_ d: String) { description = d }
    }

    /// Creates a user; the password is hashed with bcrypt and never stored or logged in clear.
    @discardableResult
    public func addUser(username: String, displayName: String, role: Role, townships: [String], password: String) throws -> User {
        guard username.range(of: "^[A-Za-z0-9_.\\-]{2,40}$", options: .regularExpression) != nil else {
            throw AccessError("用户名只能用字母、数字、_ . -，2 到 40 个字符")
        }
        guard password.count >= 10 else { throw AccessError("密码至少 10 个字符") }
        if role == .verifier {
            guard !townships.isEmpty, townships.allSatisfy({ $0.count == 9 && $0.allSatisfy(\.isNumber) }) else {
                throw AccessError("乡镇核查员须绑定一个或多个 9 位乡镇代码，如 411081101")
            }
        }
        let hash = Bcrypt.hash(password, cost: 10)
        return try pool.write { db in
            if try Row.fetchOne(db, sql: "SELECT 1 FROM users WHERE username = ?", arguments: [username]) != nil {
                throw AccessError("用户 \(username) 已存在")
            }
            try db.execute(sql: "INSERT INTO users (username, display_name, role, townships, password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [username, displayName, role.rawValue, townships.joined(separator: ","), hash, Self.now()])
            return User(id: db.lastInsertedRowID, username: username, displayName: displayName, role: role, townships: townships)
        }
    }

    public func users() throws -> [User] {
        try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM users ORDER BY id").map(Self.user) }
    }

    static func user(_ r: Row) -> User {
        User(id: r["id"], username: r["username"], displayName: r["display_name"], role: Role(rawValue: r["role"]) ?? .verifier,
             townships: (r["townships"] as String).split(separator: ",").map(String.init))
    }

    public enum SignIn: Sendable {
        case success(User, token: String, csrf: String)
        case wrongPassword
        case locked(until: String)
    }

    public static let maxFailedLogins = 5
    public static let lockMinutes = 15
    public static let sessionHours = 12

    /// Checks a password; after `maxFailedLogins` failures the account is locked for a while.
    /// A successful sign-in always starts a new session (a fresh token).
    public func signIn(username: String, password: String) throws -> SignIn {
        guard let row = try pool.read({ db in try Row.fetchOne(db, sql: "SELECT * FROM users WHERE username = ? AND active = 1", arguments: [username]) }) else {
            _ = Bcrypt.hash(password, cost: 10)   // same time as a real check, so user names cannot be probed
            return .wrongPassword
        }
        let now = Date()
        if let until: String = row["locked_until"], let d = ISO8601DateFormatter().date(from: until), d > now {
            return .locked(until: until)
        }
        let id: Int64 = row["id"]
        guard Bcrypt.verify(password, hash: row["password_hash"]) else {
            try pool.write { db in
                let failed: Int = (row["failed_logins"] as Int) + 1
                var lock: String? = nil
                if failed >= Self.maxFailedLogins {
                    lock = ISO8601DateFormatter().string(from: now.addingTimeInterval(Double(Self.lockMinutes * 60)))
                }
                try db.execute(sql: "UPDATE users SET failed_logins = ?, locked_until = ? WHERE id = ?", arguments: [lock == nil ? failed : 0, lock, id])
            }
            return .wrongPassword
        }
        let token = Token.make(), csrf = Token.make(bytes: 16)
        try pool.write { db in
            try db.execute(sql: "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = ?", arguments: [id])
            try db.execute(sql: "DELETE FROM sessions WHERE expires_at < ?", arguments: [ISO8601DateFormatter().string(from: now)])
            try db.execute(sql: "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [SHA256.hex(token), id, csrf, ISO8601DateFormatter().string(from: now),
                                       ISO8601DateFormatter().string(from: now.addingTimeInterval(Double(Self.sessionHours * 3600)))])
        }
        return .success(Self.user(row), token: token, csrf: csrf)
    }

    /// `2026-11-23T21:00:00Z`, as ISO8601DateFormatter writes it, without building one per
    /// request (every page checks its session).
    static func utcStamp(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var tm = tm()
        gmtime_r(&t, &tm)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday))T\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec))Z"
    }

    /// The user and CSRF token of a live session.
    public func session(token: String) throws -> (User, csrf: String)? {
        try pool.read { db in
            // Every page asks: the statement is prepared once per connection.
            let statement = try db.cachedStatement(sql: """
                SELECT u.*, s.csrf FROM sessions s JOIN users u ON u.id = s.user_id
                WHERE s.token_hash = ? AND s.expires_at > ? AND u.active = 1
                """)
            guard let r = try Row.fetchOne(statement, arguments: [SHA256.hex(token), Self.utcStamp(Date())]) else { return nil }
            return (Self.user(r), r["csrf"])
        }
    }

    public func signOut(token: String) throws {
        try pool.write { db in try db.execute(sql: "DELETE FROM sessions WHERE token_hash = ?", arguments: [SHA256.hex(token)]) }
    }

    /// Appends to the audit log: who, what, on what, from where. Each entry's hash covers the
    /// previous one, so an edited or deleted entry breaks the chain.
    public func audit(_ username: String, _ action: String, target: String, detail: String = "", address: String) throws {
        try pool.write { db in
            let prev = try String.fetchOne(db, sql: "SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1") ?? ""
            let at = Self.now()
            let hash = SHA256.hex([prev, at, username, action, target, detail, address].joined(separator: "\u{1F}"))
            try db.execute(sql: "INSERT INTO audit_log (at, username, action, target, detail, address, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           arguments: [at, username, action, target, detail, address, prev, hash])
        }
    }

    public struct AuditEntry: Sendable {
        public var id: Int64, at: String, username: String, action: String, target: String, detail: String, address: String
    }

    public func auditLog(limit: Int = 200) throws -> [AuditEntry] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", arguments: [limit]).map {
                AuditEntry(id: $0["id"], at: $0["at"], username: $0["username"], action: $0["action"], target: $0["target"], detail: $0["detail"], address: $0["address"])
            }
        }
    }

    /// Recomputes the hash chain; returns the id of the first entry that does not fit, or nil.
    public func verifyAuditLog() throws -> Int64? {
        try pool.read { db in
            var prev = ""
            for r in try Row.fetchAll(db, sql: "SELECT * FROM audit_log ORDER BY id") {
                let fields: [String] = [prev, r["at"], r["username"], r["action"], r["target"], r["detail"], r["address"]]
                if (r["prev_hash"] as String) != prev || SHA256.hex(fields.joined(separator: "\u{1F}")) != (r["hash"] as String) { return r["id"] }
                prev = r["hash"]
            }
            return nil
        }
    }
}
