import Crypto
import Foundation

/// What a backup holds, written beside it as `FILE.manifest.json`: when it was taken, the
/// schema it has, how many rows each table holds, the audit chain's head, and the file's
/// SHA-256. `hubd backup verify` recomputes all of it from the backup.
public struct BackupManifest: Codable, Sendable, Equatable {
    public struct AuditHead: Codable, Sendable, Equatable {
        public var id: Int64
        public var hash: String
        public init(id: Int64, hash: String) { self.id = id; self.hash = hash }
    }
    public var createdAt: String
    /// The store the backup was taken from.
    public var database: String
    /// The schema migrations the backup has, oldest first.
    public var schema: [String]
    public var tables: [String: Int]
    public var auditHead: AuditHead?
    public var bytes: Int
    public var sha256: String
    /// Seconds the copy took.
    public var seconds: Double

    public init(createdAt: String, database: String, schema: [String], tables: [String: Int], auditHead: AuditHead?,
                bytes: Int, sha256: String, seconds: Double) {
        self.createdAt = createdAt; self.database = database; self.schema = schema; self.tables = tables
        self.auditHead = auditHead; self.bytes = bytes; self.sha256 = sha256; self.seconds = seconds
    }

    public static func url(forBackup path: String) -> URL { URL(fileURLWithPath: path + ".manifest.json") }

    public func save(forBackup path: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let url = Self.url(forBackup: path)
        try enc.encode(self).write(to: url, options: .atomic)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: url.path)
    }

    public static func load(forBackup path: String) throws -> BackupManifest {
        try JSONDecoder().decode(BackupManifest.self, from: Data(contentsOf: url(forBackup: path)))
    }

    /// The SHA-256 of a file, read in 1 MB pieces.
    public static func sha256(ofFile path: String) throws -> String {
        guard let h = FileHandle(forReadingAtPath: path) else { throw CocoaError(.fileReadNoSuchFile) }
        defer { try? h.close() }
        var hasher = SHA256()
        while let chunk = try h.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// What differs between this manifest (as written) and `actual` (recomputed from the file).
    public func differences(from actual: BackupManifest) -> [String] {
        var out: [String] = []
        if sha256 != actual.sha256 { out.append("文件的 SHA-256 与清单不符（文件在备份之后被改动或损坏）") }
        if schema != actual.schema { out.append("库结构版本与清单不符：清单 \(schema.last ?? "—")，文件 \(actual.schema.last ?? "—")") }
        for (table, n) in tables.sorted(by: { $0.key < $1.key }) where actual.tables[table] != n {
            out.append("表 \(table)：清单 \(n) 行，文件 \(actual.tables[table].map(String.init) ?? "没有这张表")")
        }
        for table in actual.tables.keys.sorted() where tables[table] == nil { out.append("表 \(table) 不在清单中") }
        if auditHead != actual.auditHead {
            out.append("审计日志链头与清单不符：清单 \(auditHead.map { "#\($0.id)" } ?? "空")，文件 \(actual.auditHead.map { "#\($0.id)" } ?? "空")")
        }
        return out
    }
}

/// `backup:` in hub.yaml: when the service takes a backup, where, and how many it keeps.
public struct BackupSettings: Sendable {
    public var schedule: Schedule
    public var folder: URL
    public var keep: Int
    public init(schedule: Schedule, folder: URL, keep: Int) { self.schedule = schedule; self.folder = folder; self.keep = keep }

    /// The file a backup taken at `date` goes to (county time, sortable).
    public func file(at date: Date) -> URL {
        let local = date.addingTimeInterval(Double(schedule.utcOffset))
        let day = CivilDate(daysSinceEpoch: Int(floor(local.timeIntervalSince1970 / 86400)))
        let seconds = Int(local.timeIntervalSince1970) - Int(floor(local.timeIntervalSince1970 / 86400)) * 86400
        let stamp = day.description.replacingOccurrences(of: "-", with: "") + "-" + String(format: "%02d%02d%02d", seconds / 3600, seconds / 60 % 60, seconds % 60)
        return folder.appendingPathComponent("hub-\(stamp).sqlite")
    }

    /// The backups in the folder, oldest first (by their sortable names).
    public func existing() -> [URL] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [])
            .filter { $0.hasPrefix("hub-") && $0.hasSuffix(".sqlite") }.sorted().map { folder.appendingPathComponent($0) }
    }

    /// Deletes all but the newest `keep` backups (with their manifests); returns what went.
    @discardableResult
    public func prune() -> [URL] {
        let all = existing()
        guard all.count > keep else { return [] }
        let gone = Array(all.prefix(all.count - keep))
        for u in gone {
            try? FileManager.default.removeItem(at: u)
            try? FileManager.default.removeItem(at: BackupManifest.url(forBackup: u.path))
        }
        return gone
    }
}

/// Anchors of the audit chain kept outside the store (the daily `audit_head` log line, a backup
/// manifest): if the newest entries of the log were deleted, an anchor names an entry that is
/// no longer there, or is there with another hash.
public enum AuditAnchors {
    /// Every `id:hash` anchor in a text (a journal export, a log file) or a backup manifest.
    public static func parse(_ text: String) -> [BackupManifest.AuditHead] {
        if let data = text.data(using: .utf8), let m = try? JSONDecoder().decode(BackupManifest.self, from: data) {
            return m.auditHead.map { [$0] } ?? []
        }
        var out: [BackupManifest.AuditHead] = []
        let re = try! NSRegularExpression(pattern: #"audit_head["=: ]+"?(\d+):([0-9a-f]{64})"#)
        for m in re.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            guard let id = Range(m.range(at: 1), in: text).flatMap({ Int64(text[$0]) }), let h = Range(m.range(at: 2), in: text) else { continue }
            out.append(.init(id: id, hash: String(text[h])))
        }
        return out
    }

    /// Problems with the store's audit log against the anchors (empty: every anchor found as written).
    public static func check(_ anchors: [BackupManifest.AuditHead], in store: any AuditStore) throws -> [String] {
        var problems: [String] = []
        var byID: [Int64: String] = [:]
        let wanted = Set(anchors.map(\.id))
        try store.forEachAuditEntry { e in if wanted.contains(e.id) { byID[e.id] = e.hash } }
        for a in anchors.sorted(by: { $0.id < $1.id }) {
            guard let h = byID[a.id] else {
                problems.append("锚点 #\(a.id) 在审计日志中不存在：日志在此之后的条目被删除（截断）")
                continue
            }
            if h != a.hash { problems.append("锚点 #\(a.id) 的哈希与日志不符：该条或之前的条目被改动") }
        }
        return problems
    }
}
