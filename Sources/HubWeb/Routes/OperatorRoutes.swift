import Foundation
import Hub
import Hummingbird

/// The operators' pages: sources and their runs, quarantined rows, mappings and rules.
extension WebApp {
    func operatorRoutes() -> RouteCollection<HubRequestContext> {
        let operators = routes(for: { $0.runsSources })
        get(operators, "sources") { request, context, user in try self.sources(request, context, user) }
        get(operators, "sources/:source/quarantine") { request, context, user in try self.quarantine(request, context, user) }
        get(operators, "mappings") { request, context, user in try self.mappings(request, context, user) }
        return operators
    }
    func sources(_ request: Request, _ context: HubRequestContext, _ user: User) throws -> Response {
        let loader = MappingLoader(types: config.types, connectors: config.connectors)
        let dir = URL(fileURLWithPath: config.mappingsDirectory)
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
        var rows: [[String: Any]] = []
        for f in files {
            let m = try? loader.load(file: dir.appendingPathComponent(f))
            let source = m?.source ?? String(f.dropLast(5))
            let last = try store.runs(source: source, limit: 1).first
            let c = last?.counts ?? RunCounts()
            // What the run read: the documents the archive keeps (a paged API: many pages).
            let docs = try last.map { try store.documents(ofRun: $0.id) } ?? []
            let bytes = docs.reduce(0) { $0 + $1.bytes }
            let documents = docs.isEmpty ? "" : (docs.count == 1 ? docs[0].name : "\(docs[0].name) 等 \(docs.count) 个") + "，" + byteCountText(bytes)
            rows.append(["source": source, "title": m?.title ?? "（映射有错）", "department": m?.department ?? "", "period": last?.period ?? "—",
                         "run": last.map { String($0.id) } ?? "—", "status": last.map { $0.status.chinese } ?? "从未运行",
                         "failed": last?.status == .failed, "error": opt(last?.error), "read": c.read, "inserted": c.inserted, "updated": c.updated,
                         "unchanged": c.unchanged, "quarantined": c.quarantined, "documents": documents, "at": last.map { String($0.startedAt.prefix(16)).replacingOccurrences(of: "T", with: " ") } ?? ""])
        }
        let feedAlerts = try store.feedAlerts(limit: 50).map { ["source": $0.source, "period": $0.period, "message": $0.message, "at": String($0.raisedAt.prefix(16)).replacingOccurrences(of: "T", with: " ")] }
        return page("sources", "数据来源", context, ["sources": rows, "feedAlerts": feedAlerts])
    }

    func quarantine(_ request: Request, _ context: HubRequestContext, _ user: User) throws -> Response {
        let source = context.parameters.get("source") ?? ""
        guard let run = try store.runs(source: source, limit: 100).first(where: { $0.status == .succeeded }) else {
            return message(context, "没有记录", "来源 \(source) 还没有成功的运行。", status: .notFound)
        }
        try store.audit(user.username, "查看隔离区", target: source, detail: "运行 #\(run.id)", address: context.address)
        let entries = try store.quarantine(runID: run.id)
        return page("quarantine", "隔离的行", context, ["source": source, "run": run.id, "entries": entries.map { e -> [String: Any] in
            ["document": e.document, "row": e.row, "reasons": ResidentID.maskEmbedded(e.reasons.map(\.text).joined(separator: "；")),
             "raw": e.raw.map { "\($0[0])=\($0.count > 1 ? ResidentID.maskEmbedded(ResidentID.maskIfLikeID($0[1])) : "")" }.joined(separator: "; ")]
        }])
    }

    func mappings(_ request: Request, _ context: HubRequestContext, _ user: User) throws -> Response {
        let loader = MappingLoader(types: config.types, connectors: config.connectors)
        let dir = URL(fileURLWithPath: config.mappingsDirectory)
        var problems: [String] = []
        var maps: [[String: Any]] = []
        for f in ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter({ $0.hasSuffix(".yaml") }).sorted() {
            do {
                let m = try loader.load(file: dir.appendingPathComponent(f))
                maps.append(["source": m.source, "title": m.title, "connector": m.connector, "format": m.format.name,
                             "outputs": m.outputs.map(\.type.name).joined(separator: "、"), "version": m.version.prefix(8)])
            } catch { problems += error.items.map(\.description) }
        }
        let (rules, _, ruleProblems) = RuleLoader.loadDirectory(MappingsFolder.rules(of: dir), types: config.types)
        problems += ruleProblems.map(\.description)
        problems += config.refused?() ?? []
        problems = Array(Set(problems)).sorted()
        let warnings = config.cannotFire?() ?? RuleCoverage.describe(RuleCoverage.gaps(
            rules: rules, mappings: ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".yaml") }
                .compactMap { try? loader.load(file: dir.appendingPathComponent($0)) }, types: config.types))
        var values: [String: Any] = [
            "problems": problems, "mappings": maps, "warnings": warnings,
            "rules": rules.map { ["name": $0.name, "title": $0.title, "subject": $0.subject.rawValue, "severity": $0.severity.chinese, "version": $0.version.prefix(8)] as [String: Any] },
        ]
        if let r = config.lastReplay?() { values["replay"] = Self.replayView(r) }
        return page("mappings", "映射与规则", context, values)
    }

    /// The last replay as the page shows it (its examples were masked when it was made).
    static func replayView(_ r: ReplayReport) -> [String: Any] {
        let status: [ReplayReport.SourceLine.Status: String] = [
            .replayed: "按新映射重读", .notArchived: "原始文件不在归档中，沿用库中记录", .failed: "重读失败，沿用库中记录",
        ]
        let summary = r.ruleLines.contains(where: \.differs)
            ? "预警差异：新增 \(r.raised)，撤回 \(r.withdrawn)，内容变化 \(r.changed)（只在临时副本中重放，监测库未改动）。"
            : "预警没有差异：上线不会新增、撤回或改变任何预警。"
        return [
            "period": r.period, "at": r.at, "mappings": r.mappings, "rules": r.rules, "summary": summary,
            "differs": r.ruleLines.contains(where: \.differs),
            "sources": r.sources.compactMap { s in status[s.status].map { "\(s.source)：\($0)" + (s.message.map { "：\($0)" } ?? "") } },
            "lines": r.ruleLines.filter(\.differs).map { l -> [String: Any] in
                ["rule": l.rule, "title": l.title, "before": l.before, "after": l.after, "raised": l.raised, "withdrawn": l.withdrawn, "changed": l.changed,
                 "examples": l.raisedExamples.map { "新增 \($0.subject)：\($0.after ?? "")" } + l.withdrawnExamples.map { "撤回 \($0.subject)：\($0.before ?? "")" }
                    + l.changedExamples.map { "变化 \($0.subject)：\($0.after ?? "")" }]
            },
        ]
    }
}
