import Foundation

/// Personal data kept only as long as its purpose needs (个人信息保护法 Art. 19): what each
/// record type's `retention:` and the archive's retention would delete today, and deleting it.
public struct RetentionPlan: Sendable {
    public struct Line: Sendable {
        public var type: String
        public var title: String
        public var months: Int
        /// Records of months before this one go.
        public var before: Period
        public var records: Int
    }
    public var lines: [Line] = []
    /// Record types without a retention (kept until deleted by hand).
    public var keptForever: [String] = []
    public var archive: [DocumentArchive.Month] = []
    public var archiveRetention: Int?
    public var alertsMasked = 0

    public var records: Int { lines.reduce(0) { $0 + $1.records } }
    public var isEmpty: Bool { records == 0 && archive.isEmpty }

    public func text(applied: Bool) -> String {
        var out = ""
        let verb = applied ? "已删除" : "将删除"
        for l in lines {
            out += "  \(l.type)（\(l.title)）：保留 \(l.months) 个月，\(verb) \(l.before) 之前的 \(l.records) 条\n"
        }
        if !keptForever.isEmpty { out += "  未设保留期（一直保留）：\(keptForever.joined(separator: "、"))\n" }
        if let a = archiveRetention {
            let files = archive.reduce(0) { $0 + $1.files }
            out += "  原始文件归档：保留 \(a) 个月，\(verb) \(archive.count) 个来源月份的 \(files) 个文件\n"
        }
        out += "合计\(verb) \(records) 条记录" + (applied ? "，\(alertsMasked) 条预警的证据中身份证号已遮盖（预警和案件保留）" : "（相关预警和案件保留，证据中的身份证号将遮盖）") + "\n"
        return out
    }
}

public enum Retention {
    /// The cutoff for `months` of retention on `today`: records of months before it go.
    public static func cutoff(months: Int, today: CivilDate) -> Period {
        Period(year: today.year, month: today.month)!.adding(months: -months)
    }

    public static func plan(types: TypeCatalog, store: any RecordStore, archive: DocumentArchive?, today: CivilDate) throws -> RetentionPlan {
        var plan = RetentionPlan()
        for name in types.names {
            let t = types[name]!
            guard let months = t.retentionMonths else { plan.keptForever.append(name); continue }
            let before = cutoff(months: months, today: today)
            plan.lines.append(.init(type: name, title: t.title, months: months, before: before, records: try store.recordCount(of: t, before: before)))
        }
        if let archive, archive.retentionMonths > 0 {
            plan.archiveRetention = archive.retentionMonths
            plan.archive = archive.expired(today: today)
        }
        return plan
    }

    /// Deletes what the plan lists, writes one audit entry with the counts (when anything went),
    /// and returns what was done.
    @discardableResult
    public static func apply(types: TypeCatalog, store: any HubStore, archive: DocumentArchive?, today: CivilDate,
                             by username: String, address: String) throws -> RetentionPlan {
        var plan = try plan(types: types, store: store, archive: archive, today: today)
        for i in plan.lines.indices { if plan.lines[i].records > 0 { plan.lines[i].records = -1 } }
        // Whatever went is audited, even when a later step fails.
        var failure: (any Error)? = nil
        for i in plan.lines.indices where plan.lines[i].records < 0 {
            do {
                let (gone, masked) = try store.deleteRecords(of: types[plan.lines[i].type]!, before: plan.lines[i].before)
                plan.lines[i].records = gone
                plan.alertsMasked += masked
            } catch { failure = error; break }
        }
        for i in plan.lines.indices where plan.lines[i].records < 0 { plan.lines[i].records = 0 }
        if failure == nil, let archive, archive.retentionMonths > 0 {
            do { plan.archive = try archive.prune(today: today) } catch { failure = error; plan.archive = [] }
        } else {
            plan.archive = []
        }
        if !plan.isEmpty {
            let detail = plan.lines.filter { $0.records > 0 }.map { "\($0.type) \($0.before) 之前 \($0.records) 条" }
                + (plan.archive.isEmpty ? [] : ["原始文件 \(plan.archive.reduce(0) { $0 + $1.files }) 个"])
                + ["遮盖证据的预警 \(plan.alertsMasked) 条"]
            try store.audit(username, "按保留期删除", target: "\(plan.records) 条记录",
                            detail: detail.joined(separator: "；") + (failure.map { "；中途出错：\($0)" } ?? ""), address: address)
        }
        if let failure { throw failure }
        return plan
    }
}
