import Crypto
import Foundation
import Hub
import HummingbirdBcrypt
import Synchronization

/// Password hashing and session tokens: the web's side of `AccessStore`, which only ever sees
/// bcrypt hashes and SHA-256 digests of tokens.
public enum Passwords {
    static let cost: UInt8 = 10

    public static func hash(_ password: String) -> String { Bcrypt.hash(password, cost: cost) }
    public static func verify(_ password: String, hash: String) -> Bool { Bcrypt.verify(password, hash: hash) }
}

/// Random tokens for sessions and CSRF, from the system's secure generator.
public enum Token {
    public static func make(bytes: Int = 32) -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in
            let b = UInt8.random(in: 0...255, using: &g)
            return (b < 16 ? "0" : "") + String(b, radix: 16)
        }.joined()
    }

    /// What the store keeps of a session token: its SHA-256, hex.
    public static func digest(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}

public enum SignIn: Sendable {
    case success(User, token: String, csrf: String)
    case wrongPassword
    case locked(until: String)
}

extension AccessStore {
    /// Creates a user after checking the name, role and password (`AccessPolicy.check`); the
    /// password is hashed with bcrypt and never stored or logged in clear.
    /// Area codes are checked against `knownTownships` (from the roster) when it is not empty: a
    /// township code must be one of them, a county code the first six digits of one.
    @discardableResult
    public func addUser(username: String, displayName: String, role: Role, townships: [String], password: String,
                        knownTownships: Set<String> = []) throws -> User {
        let user = NewUser(username: username, displayName: displayName, role: role, townships: townships)
        try AccessPolicy.check(user, password: password)
        if !knownTownships.isEmpty {
            let counties = Set(knownTownships.map { String($0.prefix(6)) })
            if let unknown = townships.first(where: { !knownTownships.contains($0) && !counties.contains($0) }) {
                throw AccessError("辖区代码 \(unknown) 不在花名册的乡镇里（可选：县 \(counties.sorted().prefix(20).joined(separator: "、"))；乡镇 \(knownTownships.sorted().prefix(30).joined(separator: "、"))）")
            }
        }
        return try addUser(user, passwordHash: Passwords.hash(password))
    }

    /// Sets a new password (checked by the policy); the user's sessions end.
    public func resetPassword(username: String, password: String) throws {
        try AccessPolicy.checkPassword(password, username: username)
        try changeAccount(username: username, .password(hash: Passwords.hash(password)))
    }

    /// Checks a password; after `AccessPolicy.maxFailedLogins` failures the account is locked
    /// for a while. A successful sign-in always starts a new session (a fresh token).
    public func signIn(username: String, password: String, now: Date = Date()) throws -> SignIn {
        guard let c = try credentials(username: username) else {
            _ = Passwords.hash(password)   // same time as a real check, so user names cannot be probed
            return .wrongPassword
        }
        if let until = c.lockedUntil, until > AccessPolicy.utcStamp(now) {
            _ = Passwords.verify(password, hash: c.passwordHash)   // the same time as any other answer
            return .locked(until: until)
        }
        guard Passwords.verify(password, hash: c.passwordHash) else {
            try recordFailedLogin(userID: c.user.id, maxFailures: AccessPolicy.maxFailedLogins,
                                  lockUntil: AccessPolicy.utcStamp(now.addingTimeInterval(Double(AccessPolicy.lockMinutes * 60))))
            return .wrongPassword
        }
        let token = Token.make(), csrf = Token.make(bytes: 16)
        try startSession(userID: c.user.id, tokenHash: Token.digest(token), csrf: csrf, createdAt: AccessPolicy.utcStamp(now),
                         expiresAt: AccessPolicy.utcStamp(now.addingTimeInterval(Double(AccessPolicy.sessionHours * 3600))))
        return .success(c.user, token: token, csrf: csrf)
    }

    /// The user and CSRF token of a live session.
    public func session(token: String) throws -> (User, csrf: String)? {
        try session(tokenHash: Token.digest(token), now: AccessPolicy.utcStamp(Date())).map { ($0.user, $0.csrf) }
    }

    public func signOut(token: String) throws { try endSession(tokenHash: Token.digest(token)) }
}

/// Failed sign-ins per client address: after `limit` within `minutes`, the address is refused
/// for `minutes` whatever the user name (a per-account lock alone lets one address try many
/// names). In memory: a restart forgets it, the per-account lock in the store does not.
public final class LoginThrottle: Sendable {
    public static let limit = 20
    public static let minutes = 15
    private let failures = Mutex<[String: [Date]]>([:])
    public init() {}

    public func failed(_ address: String, now: Date = Date()) {
        failures.withLock { all in
            all[address, default: []].append(now)
            if all.count > 10_000 { all = all.filter { $0.value.last.map { now.timeIntervalSince($0) < Double(Self.minutes * 60) } ?? false } }
        }
    }

    public func isBlocked(_ address: String, now: Date = Date()) -> Bool {
        failures.withLock { all in
            let recent = (all[address] ?? []).filter { now.timeIntervalSince($0) < Double(Self.minutes * 60) }
            all[address] = recent.isEmpty ? nil : recent
            return recent.count >= Self.limit
        }
    }
}
