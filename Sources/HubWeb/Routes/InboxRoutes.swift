import Foundation
import Hub
import Hummingbird
import HTTPTypes

/// The township inbox and the case pages: for the roles that see cases, each within their
/// scope; verifiers record visits, the county reopens.
extension WebApp {
    func inboxRoutes() -> RouteCollection<HubRequestContext> {
        let cases = routes(for: { $0.seesCases })
        get(cases, "inbox") { request, context, user in try self.inbox(request, context, user) }
        get(cases, "cases/:id") { request, context, user in try self.casePage(request, context, user, visitError: nil) }
        post(cases, "cases/:id/visit", VisitForm.self) { request, context, user, form in
            guard user.role.verifies else { return try self.refuse(context, user, "只有乡镇核查员可以记录入户核实。") }
            return try self.visit(request, context, user, form)
        }
        post(cases, "cases/:id/reopen", ReopenForm.self) { request, context, user, form in
            guard user.role.reopens else { return try self.refuse(context, user, "只有县级用户可以重新打开案件。") }
            return try self.reopen(request, context, user, form)
        }
        cases.get("ledger.csv") { request, context in try await self.ledger(request, context, xlsx: false) }
        cases.get("ledger.xlsx") { request, context in try await self.ledger(request, context, xlsx: true) }
        return cases
    }

    func inbox(_ request: Request, _ context: HubRequestContext, _ user: User) throws -> Response {
        var f = filter(request)
        let today = CivilDate.today
        // 50 cases a page: a phone shows a page at once, and a county's inbox stays fast.
        let perPage = 50
        // Any page number a link or a hand-edited URL carries: below 1 is page 1, absurd ones stay
        // within what an offset can hold (they show an empty page).
        let pageNumber = min(max(1, Int(request.uri.queryParameters["page"].map(String.init) ?? "") ?? 1), 1_000_000)
        f.limit = perPage + 1
        f.offset = (pageNumber - 1) * perPage
        // The whole page is kept for this session until the user's cases change: reloading the
        // inbox (what verifiers do all day) then costs a session check and a counter read.
        let version = try store.inboxVersion(for: user)
        let key = "inbox-page\u{1E}\(user.id)\u{1E}\(user.displayName)\u{1E}\(user.role.rawValue)\u{1E}\(user.scopeKey)\u{1E}\(context.csrf ?? "")\u{1E}\(today)\u{1E}\(request.uri.query ?? "")"
        let body = try cache.value(key, version: version) {
            try inboxBody(request, context, user, f, today: today, perPage: perPage, pageNumber: pageNumber)
        }
        return htmlResponse(body)
    }

    func inboxBody(_ request: Request, _ context: HubRequestContext, _ user: User, _ f: CaseFilter, today: CivilDate, perPage: Int, pageNumber: Int) throws -> String {
        let fragments = try inboxFragments(user, f, today: today, perPage: perPage)
        let overview = fragments.overview, hasNext = fragments.hasNext
        let query = request.uri.query ?? ""
        func pageLink(_ n: Int) -> String {
            var parts = query.split(separator: "&").filter { !$0.hasPrefix("page=") }.map(String.init)
            parts.append("page=\(n)")
            return "/inbox?" + parts.joined(separator: "&")
        }
        let exportQuery = query.split(separator: "&").filter { !$0.hasPrefix("page=") }.joined(separator: "&")
        return pageBody("inbox", "预警案件", context, [
            "openCount": overview.open,
            "overdueCount": overview.overdue,
            "closedCount": overview.closed,
            "isOpen": f.status == .open, "isClosed": f.status == .closed,
            "sevHigh": f.severity == .high, "sevMedium": f.severity == .medium, "sevLow": f.severity == .low,
            "overdueOnly": f.overdueOnly, "canExport": true, "query": exportQuery,
            "ruleOptions": fragments.ruleOptions,
            "villageOptions": fragments.villageOptions,
            "pageNumber": pageNumber, "paged": pageNumber > 1 || hasNext,
            "prevLink": pageNumber > 1 ? pageLink(pageNumber - 1) : false, "nextLink": hasNext ? pageLink(pageNumber + 1) : false,
            "hasCases": fragments.hasCases,
            "caseItems": fragments.caseItems,
        ])
    }

    /// The parts of an inbox page that depend only on the user's scope, the filter and the
    /// store: written once per change to the cases (see `InboxStore.inboxVersion`) and reused.
    struct InboxFragments {
        var overview: InboxOverview
        var ruleOptions: String, villageOptions: String, caseItems: String
        var hasCases: Bool, hasNext: Bool
    }

    func inboxFragments(_ user: User, _ f: CaseFilter, today: CivilDate, perPage: Int) throws -> InboxFragments {
        let key = "inbox-fragments\u{1E}\(user.scopeKey)\u{1E}\(f.cacheKey)\u{1E}\(today)"
        return try cache.value(key, version: try store.inboxVersion(for: user)) {
            var cases = try store.cases(for: user, filter: f, today: today)
            let hasNext = cases.count > perPage
            if hasNext { cases.removeLast() }
            let overview = try store.inboxOverview(for: user, today: today)
            // The inbox is the page every verifier opens all day: its repeated parts are written
            // here directly (escaped by `HTML.escape`) rather than looked up key by key by the
            // template engine, which was most of the page's cost.
            return InboxFragments(
                overview: overview,
                ruleOptions: overview.rules.map { HTML.option($0.name, $0.title, selected: f.rule == $0.name) }.joined(),
                villageOptions: overview.villages.map { HTML.option($0.code, $0.name, selected: f.village == $0.code) }.joined(),
                caseItems: cases.map { caseItem($0, today: today) }.joined(),
                hasCases: !cases.isEmpty, hasNext: hasNext)
        }
    }

    /// One case in the inbox list.
    func caseItem(_ c: CaseSummary, today: CivilDate) -> String {
        let overdue = c.isOverdue(today: today)
        let when = c.status == .open
            ? "期限 \(HTML.escape(c.deadline))" + (overdue ? " · 已逾期" : "")
            : "已销号 · " + HTML.escape(c.outcome.flatMap { VisitOutcome(rawValue: $0)?.chinese } ?? "")
        return """
            <li class="case \(overdue ? "is-overdue" : "") sev-\(c.severity.rawValue)"><a href="/cases/\(c.id)">\
            <span class="deadline">\(when)</span>\
            <span class="place">\(HTML.escape(c.township ?? "")) \(HTML.escape(c.village ?? ""))</span>\
            <span class="subject">\(HTML.escape(subjectText(c)))</span>\
            <span class="titles">\(HTML.escape(c.titles.joined(separator: "、")))</span></a></li>

            """
    }

    /// The case if it exists and the user may see it; otherwise the denial (logged).
    func visibleCase(_ request: Request, _ context: HubRequestContext, _ user: User) throws -> Result<CaseDetail, Denied> {
        guard let id = context.parameters.get("id").flatMap({ Int64($0) }),
              let detail = try store.caseDetail(id) else {
            return .failure(Denied(response: message(context, "案件不存在", "找不到该案件。", status: .notFound)))
        }
        guard user.sees(township: detail.summary.townshipCode) else {
            try store.audit(user.username, "拒绝访问", target: "案件 #\(id)", detail: "不在本人负责的乡镇", address: context.address)
            return .failure(Denied(response: message(context, "无权查看", "该案件不属于您负责的乡镇。", status: .forbidden)))
        }
        return .success(detail)
    }

    static let householdLabels: [(String, String)] = [
        ("household_id", "户编号"), ("township", "乡镇"), ("village", "行政村"), ("category", "户类型"), ("monitoring_status", "监测状态"),
        ("monitoring_type", "监测对象类别"), ("risk_reason", "主要风险"), ("monitored_on", "纳入监测日期"), ("risk_eliminated_on", "风险消除日期"),
        ("income_year", "收入年度"), ("income_per_person", "家庭人均纯收入（元）"), ("size", "家庭人口数"), ("labour", "劳动力人数"), ("updated_on", "信息更新日期"),
    ]

    func display(_ v: Value, field: String, type: FieldType?) -> String {
        if type == .money, case .integer(let fen) = v { return Money.format(fen: fen) }
        if type == .residentID || field == "id_number" { return ResidentID.mask(v.description) }
        if type == .bool, case .integer(let b) = v { return b != 0 ? "是" : "否" }
        return v.description
    }

    func casePage(_ request: Request, _ context: HubRequestContext, _ user: User, visitError: String?, status: HTTPResponse.Status = .ok) throws -> Response {
        let detail: CaseDetail
        switch try visibleCase(request, context, user) { case .success(let d): detail = d; case .failure(let d): return d.response }
        let c = detail.summary
        try store.audit(user.username, "查看案件", target: "案件 #\(c.id)", detail: subjectText(c), address: context.address)
        let today = CivilDate.today
        let hType = config.types["household"]
        var values: [String: Any] = [
            "id": c.id, "severity": c.severity.rawValue, "severityName": c.severity.chinese,
            "statusName": c.status.chinese, "township": c.township ?? c.townshipCode ?? CaseStatus.awaitingDispatchName, "village": c.village ?? "",
            "period": c.period, "openedAt": String(c.openedAt.prefix(10)), "deadline": c.deadline, "overdue": c.isOverdue(today: today),
            "subjectText": subjectText(c), "today": today.description, "visitError": opt(visitError),
            "canVisit": user.role.verifies && c.status == .open, "canReopen": user.role.reopens && c.status == .closed,
            "canDispatch": user.role.dispatches && c.status == .open, "unassigned": (c.townshipCode ?? "").isEmpty,
            "townships": user.role.dispatches && c.status == .open ? try townshipChoices().map { ["code": $0.code, "name": $0.name] } : [],
            "outcomes": VisitOutcome.allCases.map { ["value": $0.rawValue, "label": $0.chinese] },
            "monitoringTypes": VisitRecord.monitoringTypes,
        ]
        if let h = detail.household {
            values["household"] = [
                "fields": Self.householdLabels.compactMap { (k, label) -> [String: String]? in
                    guard let v = h[k], !v.isNull else { return nil }
                    return ["label": label, "value": display(v, field: k, type: hType?.field(k)?.type)]
                },
                "members": detail.members.map { m -> [String: String] in
                    ["name": m["name"]?.description ?? "", "relation": m["relation"]?.description ?? "",
                     "id": ResidentID.mask(m["id_number"]?.description ?? ""), "health": m["health"]?.description ?? "",
                     "disability": m["disability"]?.description ?? ""]
                },
            ] as [String: Any]
        }
        values["alerts"] = detail.alerts.map { a -> [String: Any] in
            ["title": a.title, "severity": a.severity.rawValue, "message": ResidentID.maskEmbedded(a.message), "ruleVersion": a.ruleVersion, "evidenceCount": a.evidence.count,
             "evidence": a.evidence.map { e -> [String: Any] in
                 let t = config.types[e.type]
                 return ["typeTitle": t?.title ?? e.type, "source": e.source, "run": e.run, "row": e.row,
                         "fields": (t?.fields ?? []).compactMap { f -> [String: String]? in
                             guard let v = e.fields[f.name] else { return nil }
                             return ["label": f.title, "value": f.type == .residentID ? ResidentID.mask(v) : (f.type == .bool ? (v == "true" ? "是" : "否") : ResidentID.maskEmbedded(v))]
                         }]
             }]
        }
        values["events"] = detail.events.map { ["at": String($0.at.prefix(16)).replacingOccurrences(of: "T", with: " "), "username": $0.username, "action": $0.action, "detail": $0.detail] }
        values["visits"] = detail.visits.map { v -> [String: Any] in
            ["visitedOn": v.visitedOn, "visitors": v.visitors, "findings": v.findings, "outcome": v.outcome.chinese,
             "monitoringType": opt(v.outcome == .monitor ? v.monitoringType : nil), "reason": opt(v.reason)]
        }
        return page("case", "案件 #\(c.id)", context, values, status: status)
    }

    func visit(_ request: Request, _ context: HubRequestContext, _ user: User, _ f: VisitForm) throws -> Response {
        let detail: CaseDetail
        switch try visibleCase(request, context, user) { case .success(let d): detail = d; case .failure(let d): return d.response }
        guard let outcome = VisitOutcome(rawValue: f.outcome ?? "") else {
            return try casePage(request, context, user, visitError: "请选择核实结果", status: .badRequest)
        }
        let v = VisitRecord(visitedOn: f.visitedOn ?? "", visitors: f.visitors ?? "", findings: f.findings ?? "", outcome: outcome,
                            monitoringType: f.monitoringType.nonEmpty, reason: f.reason.nonEmpty)
        do {
            try store.recordVisit(caseID: detail.summary.id, by: user, visit: v)
        } catch let e as CaseChangeError {
            return try casePage(request, context, user, visitError: e.description, status: .badRequest)
        }
        try store.audit(user.username, "入户核实销号", target: "案件 #\(detail.summary.id)", detail: outcome.chinese, address: context.address)
        return Self.redirect("/cases/\(detail.summary.id)")
    }

    func reopen(_ request: Request, _ context: HubRequestContext, _ user: User, _ f: ReopenForm) throws -> Response {
        let detail: CaseDetail
        switch try visibleCase(request, context, user) { case .success(let d): detail = d; case .failure(let d): return d.response }
        do {
            try store.reopen(caseID: detail.summary.id, by: user, reason: f.reason ?? "", deadlineDays: config.deadlineDays)
        } catch let e as CaseChangeError {
            return try casePage(request, context, user, visitError: e.description, status: .badRequest)
        }
        try store.audit(user.username, "重新打开案件", target: "案件 #\(detail.summary.id)", detail: f.reason ?? "", address: context.address)
        return Self.redirect("/cases/\(detail.summary.id)")
    }
}
