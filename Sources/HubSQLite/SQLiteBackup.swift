import Foundation
internal import GRDB
import Hub

// Online backups of the store, and checking a backup file on its own.
extension SQLiteStore {
    /// A consistent copy of the store at `path` while the service goes on pulling and serving
    /// (`VACUUM INTO` over one read snapshot: the copy holds exactly what had committed when it
    /// began), with its manifest beside it. The file and the manifest are readable by their owner only.
    @discardableResult
    public func backup(to path: String) throws -> BackupManifest {
        let started = Date()
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) }
        try copy(to: path)
        var manifest = try SQLiteBackup.inspect(path).manifest
        manifest.createdAt = Timestamp.string(started)
        manifest.database = self.path
        manifest.seconds = Date().timeIntervalSince(started)
        try manifest.save(forBackup: path)
        return manifest
    }
}

/// Reads a store file without changing it: its manifest as recomputed, its integrity check,
/// and its audit chain.
public enum SQLiteBackup {
    public struct Inspection: Sendable {
        public var manifest: BackupManifest
        /// `PRAGMA integrity_check`'s answer: ["ok"] for a sound file.
        public var integrity: [String]
        /// The first audit entry whose hash does not fit, or nil.
        public var auditBroken: Int64?
    }

    public static func inspect(_ path: String) throws -> Inspection {
        var config = Configuration()
        config.readonly = true
        let queue = try DatabaseQueue(path: path, configuration: config)
        defer { try? queue.close() }
        return try queue.read { db in
            let integrity = try String.fetchAll(db, sql: "PRAGMA integrity_check")
            let schema = try db.tableExists("grdb_migrations") ? try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid") : []
            var tables: [String: Int] = [:]
            for t in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name") {
                tables[t] = try Int.fetchOne(db, sql: "SELECT count(*) FROM \(SQLiteStore.quote(t))") ?? 0
            }
            var head: BackupManifest.AuditHead? = nil
            var broken: Int64? = nil
            if try db.tableExists("audit_log") {
                var prev = ""
                let rows = try Row.fetchCursor(db, sql: "SELECT * FROM audit_log ORDER BY id")
                while let r = try rows.next() {
                    let event = AuditEvent(at: r["at"], username: r["username"], action: r["action"], target: r["target"], detail: r["detail"], address: r["address"])
                    let id: Int64 = r["id"], hash: String = r["hash"], prevHash: String = r["prev_hash"]
                    if broken == nil, prevHash != prev || AuditChain.hash(prev: prev, event) != hash { broken = id }
                    prev = hash
                    head = .init(id: id, hash: hash)
                }
            }
            let bytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            let manifest = BackupManifest(createdAt: "", database: path, schema: schema, tables: tables, auditHead: head, bytes: bytes,
                                          sha256: try BackupManifest.sha256(ofFile: path), seconds: 0)
            return Inspection(manifest: manifest, integrity: integrity, auditBroken: broken)
        }
    }

    /// Everything wrong with a backup: integrity, audit chain, and every difference from the
    /// manifest written when it was taken. Empty: the backup is sound and as it was taken.
    public static func verify(_ path: String) throws -> [String] {
        guard FileManager.default.fileExists(atPath: path) else { return ["备份文件 \(path) 不存在"] }
        let written: BackupManifest
        do { written = try BackupManifest.load(forBackup: path) } catch {
            return ["找不到或读不懂备份清单 \(BackupManifest.url(forBackup: path).path)"]
        }
        let found = try inspect(path)
        var problems: [String] = []
        if found.integrity != ["ok"] { problems.append("完整性检查失败：" + found.integrity.prefix(5).joined(separator: "；")) }
        if let b = found.auditBroken { problems.append("审计日志的哈希链从第 \(b) 条起不连续") }
        return problems + written.differences(from: found.manifest)
    }
}
