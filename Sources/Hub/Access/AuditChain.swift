import Crypto
import Foundation

/// What someone did: who, what, on what, from where.
public struct AuditEvent: Sendable {
    public var at: String
    public var username: String
    public var action: String
    public var target: String
    public var detail: String
    public var address: String
    public init(at: String = Timestamp.now(), username: String, action: String, target: String, detail: String = "", address: String) {
        self.at = at; self.username = username; self.action = action; self.target = target; self.detail = detail; self.address = address
    }
}

/// An audit log entry as stored: the event and its links in the chain.
public struct AuditEntry: Sendable {
    public var id: Int64
    public var event: AuditEvent
    public var prevHash: String
    public var hash: String
    public init(id: Int64, event: AuditEvent, prevHash: String, hash: String) {
        self.id = id; self.event = event; self.prevHash = prevHash; self.hash = hash
    }
    public var at: String { event.at }
    public var username: String { event.username }
    public var action: String { event.action }
    public var target: String { event.target }
    public var detail: String { event.detail }
    public var address: String { event.address }
}

/// The audit log's hash chain: each entry's SHA-256 covers the previous entry's hash and its
/// own fields, so an edited or deleted entry breaks every link after it.
public enum AuditChain {
    /// The hash of an entry that follows `prev` ("" for the first).
    public static func hash(prev: String, _ e: AuditEvent) -> String {
        let text = [prev, e.at, e.username, e.action, e.target, e.detail, e.address].joined(separator: "\u{1F}")
        return hex(SHA256.hash(data: Data(text.utf8)))
    }

    static func hex(_ digest: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for b in digest { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 0xF)]) }
        return String(decoding: out, as: UTF8.self)
    }
}

extension AuditStore {
    /// Appends to the audit log: who, what, on what, from where.
    public func audit(_ username: String, _ action: String, target: String, detail: String = "", address: String) throws {
        try append(AuditEvent(username: username, action: action, target: target, detail: detail, address: address))
    }

    /// Recomputes the hash chain; returns the id of the first entry that does not fit, or nil.
    public func verifyAuditLog() throws -> Int64? {
        var prev = ""
        var broken: Int64? = nil
        try forEachAuditEntry { e in
            guard broken == nil else { return }
            if e.prevHash != prev || AuditChain.hash(prev: prev, e.event) != e.hash { broken = e.id; return }
            prev = e.hash
        }
        return broken
    }
}
