import Foundation
internal import GRDB
import Hub

// Delivery alerts, interrupted runs and the metrics snapshot.
extension SQLiteStore {
    public func raiseFeedAlert(source: String, period: String, kind: String, message: String) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO feed_alerts (source, period, kind, message, raised_at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [source, period, kind, message, Self.now()])
        }
    }

    public func feedAlerts(limit: Int = 100) throws -> [FeedAlert] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM feed_alerts ORDER BY id DESC LIMIT ?", arguments: [limit]).map {
                FeedAlert(source: $0["source"], period: $0["period"], kind: $0["kind"], message: $0["message"], raisedAt: $0["raised_at"])
            }
        }
    }

    public func runsAwaitingRules() throws -> [(id: Int64, period: String)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, period FROM runs WHERE status = 'succeeded' AND rules_evaluated = 0 ORDER BY id").map { ($0["id"], $0["period"]) }
        }
    }

    @discardableResult
    public func markInterruptedRuns() throws -> Int {
        try pool.write { db in
            try db.execute(sql: "UPDATE runs SET status = 'failed', error = '进程中断，本次拉取已整体回滚，将重新拉取', finished_at = ? WHERE status = 'running'", arguments: [Self.now()])
            return db.changesCount
        }
    }

    public func metricsSnapshot(today: CivilDate) throws -> MetricsSnapshot {
        try pool.read { db in
            var m = MetricsSnapshot()
            m.runs = try Row.fetchAll(db, sql: """
                SELECT source, status, count(*) AS n, sum(rows_read) AS read, sum(inserted + updated + unchanged) AS stored, sum(quarantined) AS q
                FROM runs GROUP BY source, status ORDER BY source, status
                """).map {
                MetricsSnapshot.Runs(source: $0["source"], status: RunStatus(rawValue: $0["status"]) ?? .failed, count: $0["n"],
                                     read: $0["read"] ?? 0, stored: $0["stored"] ?? 0, quarantined: $0["q"] ?? 0)
            }
            m.lastRunSeconds = try Row.fetchAll(db, sql: """
                SELECT source, (julianday(finished_at) - julianday(started_at)) * 86400.0 AS secs FROM runs
                WHERE id IN (SELECT max(id) FROM runs WHERE finished_at IS NOT NULL GROUP BY source) ORDER BY source
                """).map { ($0["source"], ($0["secs"] as Double?) ?? 0) }
            m.alertsByRule = try Row.fetchAll(db, sql: "SELECT rule, count(*) AS n FROM alerts GROUP BY rule ORDER BY rule").map { ($0["rule"], $0["n"]) }
            m.cases = try Row.fetchAll(db, sql: """
                SELECT coalesce(township_code, '') AS t, sum(status = 'open') AS open, sum(status = 'open' AND deadline < ?) AS overdue
                FROM cases GROUP BY coalesce(township_code, '') ORDER BY 1
                """, arguments: [today.description]).map { MetricsSnapshot.Township(code: $0["t"], open: $0["open"] ?? 0, overdue: $0["overdue"] ?? 0) }
            m.feedAlerts = try Row.fetchAll(db, sql: "SELECT source, kind, count(*) AS n FROM feed_alerts GROUP BY source, kind ORDER BY source, kind")
                .map { ($0["source"], $0["kind"], $0["n"]) }
            return m
        }
    }
}

// Copies of the whole store.
extension SQLiteStore {
    /// Writes a consistent copy of the store to a new file while others go on reading and
    /// writing (`VACUUM INTO` over one read transaction: the copy holds exactly what had
    /// committed when it began). The file must not exist; on failure it is removed.
    public func copy(to path: String) throws {
        // The file first, empty, readable by its owner only (VACUUM INTO fills an empty file):
        // the copy holds personal data from its first byte; O_EXCL refuses an existing file.
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError("无法创建 \(path)：\(String(cString: strerror(errno)))（已存在的文件不覆盖）") }
        close(fd)
        // Outside GRDB's read transaction (VACUUM refuses to run inside one); VACUUM INTO reads
        // one snapshot of its own and needs no write lock, so pulls go on meanwhile.
        do { try pool.unsafeRead { db in try db.execute(sql: "VACUUM INTO ?", arguments: [path]) } } catch {
            unlink(path)
            throw error
        }
    }
}
