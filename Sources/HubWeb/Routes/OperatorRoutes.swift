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
            rows.append(["source": source, "title": m?.title ?? "（映射有错）", "department": m?.department ?? "", "period": last?.period ?? "—",
                         "run": last.map { String($0.id) } ?? "—", "status": last.map { $0.status.chinese } ?? "从未运行",
                         "failed": last?.status == .failed, "error": opt(last?.error), "read": c.read, "inserted": c.inserted, "updated": c.updated,
                         "unchanged": c.unchanged, "quarantined": c.quarantined, "at": last.map { String($0.startedAt.prefix(16)).replacingOccurrences(of: "T", with: " ") } ?? ""])
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
        return page("mappings", "映射与规则", context, [
            "problems": problems, "mappings": maps, "warnings": warnings,
            "rules": rules.map { ["name": $0.name, "title": $0.title, "subject": $0.subject.rawValue, "severity": $0.severity.chinese, "version": $0.version.prefix(8)] as [String: Any] },
        ])
    }
}
