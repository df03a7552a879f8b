import Foundation
import Hub
import Hummingbird
import HTTPTypes

/// The county's overview and its dispatch queue: for the roles that see every township.
extension WebApp {
    func countyRoutes() -> RouteCollection<HubRequestContext> {
        let county = routes(for: { $0.seesAllTownships })
        get(county, "dashboard") { request, context, user in try self.dashboard(request, context, user) }
        get(county, "dispatch") { request, context, user in try self.dispatchPage(context, user, message: nil) }
        post(county, "dispatch", DispatchForm.self) { request, context, user, form in
            guard user.role.dispatches else { return try self.refuse(context, user, "只有县级用户可以分派案件。") }
            return try self.dispatch(context, user, form)
        }
        return county
    }

    func dashboard(_ request: Request, _ context: HubRequestContext, _ user: User) throws -> Response {
        let d = try store.dashboard(for: user, today: .today)
        return page("dashboard", "全县概况", context, [
            "awaitingDispatch": d.byTownship.first { $0.code.isEmpty }?.open ?? 0,
            "townships": d.byTownship.map { t -> [String: Any] in
                ["link": t.code.isEmpty ? "/dispatch" : "/inbox?township=\(t.code)", "name": t.name,
                 "open": t.open, "overdue": t.overdue, "late": t.overdue > 0, "closed": t.closed, "monitored": t.monitored]
            },
            "rules": d.byRule.map { r -> [String: Any] in
                let judged = r.confirmed + r.rejected
                return ["title": r.title, "cases": r.cases, "confirmed": r.confirmed, "rejected": r.rejected,
                        "precision": judged == 0 ? "—" : String(format: "%.0f%%", Double(r.confirmed) / Double(judged) * 100)]
            },
            "trend": TrendChart.svg(d.byPeriod),
        ])
    }

    /// The townships of the user's area a case can be sent to: code and name, from the roster.
    func townshipChoices(for user: User) throws -> [(code: String, name: String)] {
        try store.regionNames().filter { $0.key.count == 9 && user.sees(township: $0.key) }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// The county's dispatch queue: open cases that no roster entry or record could place in a
    /// township, each with what the records say about the person and where they were seen.
    func dispatchPage(_ context: HubRequestContext, _ user: User, message: String?, status: HTTPResponse.Status = .ok) throws -> Response {
        var f = CaseFilter()
        f.awaitingDispatch = true
        f.status = .open
        f.limit = 200
        let waiting = try store.caseCount(for: user, filter: f, today: .today)
        let cases = try store.cases(for: user, filter: f, today: .today)
        try store.audit(user.username, "查看待分派案件", target: "待分派", detail: "\(cases.count) 件", address: context.address)
        let items = try cases.map { c -> [String: Any] in
            let detail = try store.caseDetail(c.id)
            return ["id": c.id, "subject": subjectText(c), "titles": c.titles.joined(separator: "、"), "deadline": c.deadline,
                    "severity": c.severity.rawValue, "clues": detail.map(placeClues) ?? []]
        }
        return page("dispatch", "待分派案件", context, [
            "waiting": waiting, "shown": cases.count, "more": waiting > cases.count, "cases": items, "hasCases": !items.isEmpty,
            "townships": try townshipChoices(for: user).map { ["code": $0.code, "name": $0.name] }, "message": opt(message),
        ], status: status)
    }

    /// What an alert's records say about a person outside the roster: their name, and any
    /// place the department wrote down (a region code, an address, a hospital), as the
    /// record type titles them — so a county analyst can tell which township to send it to.
    func placeClues(_ detail: CaseDetail) -> [String] {
        var clues: [String] = []
        let names = (try? store.regionNames()) ?? [:]
        for a in detail.alerts {
            for e in a.evidence.prefix(3) {
                guard let type = config.types[e.type] else { continue }
                for f in type.fields {
                    guard let v = e.fields[f.name], !v.isEmpty else { continue }
                    let clue: String?
                    if f.type == .region {
                        clue = "\(f.title)：\(v)" + (names[v].map { "（\($0)）" } ?? "")
                    } else if f.type == .text, f.name == "name" || f.title.contains("姓名")
                                || ["地址", "住址", "医院", "机构", "村", "乡", "镇", "单位"].contains(where: f.title.contains) {
                        clue = "\(f.title)：\(ResidentID.maskEmbedded(v))"
                    } else {
                        clue = nil
                    }
                    if let clue, !clues.contains(clue) { clues.append(clue) }
                }
            }
        }
        return Array(clues.prefix(6))
    }

    func dispatch(_ context: HubRequestContext, _ user: User, _ form: DispatchForm) throws -> Response {
        let ids = (form.ids ?? []).compactMap { Int64($0) }
        let township = form.township ?? ""
        guard let name = try townshipChoices(for: user).first(where: { $0.code == township })?.name else {
            return try dispatchPage(context, user, message: "请选择要分派到的乡镇。", status: .badRequest)
        }
        guard !ids.isEmpty else { return try dispatchPage(context, user, message: "请勾选要分派的案件。", status: .badRequest) }
        var failed: [(id: Int64, error: CaseChangeError)] = []
        do {
            // A county's analyst moves only cases of their own area (the others do not exist for them).
            var mine: [Int64] = []
            for id in ids {
                if let d = try store.caseDetail(id), user.sees(township: d.summary.townshipCode) { mine.append(id) } else { failed.append((id, .notFound)) }
            }
            failed += try store.dispatch(caseIDs: mine, to: township, townshipName: name, by: user)
        } catch let e as CaseChangeError {
            return try dispatchPage(context, user, message: e.description, status: .badRequest)
        }
        let moved = ids.count - failed.count
        try store.audit(user.username, "分派案件", target: ids.map { "案件 #\($0)" }.joined(separator: ","),
                        detail: "分派至\(name)（\(township)），成功 \(moved) 件", address: context.address)
        if let back = form.back, back == "case", ids.count == 1, failed.isEmpty { return Self.redirect("/cases/\(ids[0])") }
        var text = "已分派 \(moved) 件至\(name)。"
        if !failed.isEmpty { text += failed.map { "案件 #\($0.id)：\($0.error.description)" }.joined(separator: "；") }
        return try dispatchPage(context, user, message: text)
    }
}
