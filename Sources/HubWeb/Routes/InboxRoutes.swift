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
        get(cases, "cases/:id/print") { request, context, user in
            let detail: CaseDetail
            switch try self.visibleCase(request, context, user) { case .success(let d): detail = d; case .failure(let d): return d.response }
            try self.store.audit(user.username, "打印入户核实表", target: "案件 #\(detail.summary.id)", detail: "", address: context.address)
            return self.page("print", "入户核实表", context, ["sheets": [self.printSheet(detail)], "count": 1, "back": "/cases/\(detail.summary.id)"])
        }
        // A township's open cases (or whatever the inbox filter selects), one sheet each.
        get(cases, "print") { request, context, user in
            var f = self.filter(request)
            if f.status == nil { f.status = .open }
            f.limit = 200
            let list = try self.store.cases(for: user, filter: f, today: .today)
            let total = try self.store.caseCount(for: user, filter: f, today: .today)
            try self.store.audit(user.username, "批量打印入户核实表", target: "\(list.count) 件", detail: Self.auditedQuery(request), address: context.address)
            let sheets = try list.compactMap { try self.store.caseDetail($0.id) }.map(self.printSheet)
            return self.page("print", "批量打印入户核实表", context, ["sheets": sheets, "count": sheets.count, "more": total > sheets.count, "back": "/inbox"])
        }
        post(cases, "cases/:id/visit", VisitForm.self) { request, context, user, form in
            guard user.role.verifies else { return try self.refuse(context, user, "只有乡镇核查员可以记录入户核实。") }
            return try self.visit(request, context, user, form)
        }
        post(cases, "cases/:id/reopen", ReopenForm.self) { request, context, user, form in
            guard user.role.reopens else { return try self.refuse(context, user, "只有县级用户可以重新打开案件。") }
            return try self.reopen(request, context, user, form)
        }
        cases.post("cases/:id/photos") { request, context in
            guard let user = context.user else { return Self.redirect("/login") }
            var req = request
            let body = try await req.collectBody(upTo: PhotoSanitizer.maxBytes + 64 << 10)
            let contentType = request.headers[.contentType] ?? ""
            return try await BlockingPool.run { try self.uploadPhoto(request, context, user, contentType: contentType, body: Array(buffer: body)) }
        }
        get(cases, "photos/:pid") { request, context, user in try self.showPhoto(request, context, user) }
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
        if let q = f.search {
            // What was looked for is logged like any other access (an ID number masked).
            try store.audit(user.username, "搜索案件", target: "收件箱", detail: ResidentID.maskEmbedded(q), address: context.address)
        }
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
            "overdueOnly": f.overdueOnly, "canExport": true, "query": exportQuery, "search": f.search ?? "",
            "filtered": f.status != nil || f.rule != nil || f.village != nil || f.severity != nil || f.overdueOnly,
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
            // The same answer as for a case that does not exist: nobody learns which ids exist elsewhere.
            try store.audit(user.username, "拒绝访问", target: "案件 #\(id)", detail: "不在本人负责的乡镇", address: context.address)
            return .failure(Denied(response: message(context, "案件不存在", "找不到该案件。", status: .notFound)))
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

    /// What a verifier typed into the visit form, and what was wrong with it, field by field:
    /// a refused submit comes back with everything as it was and each error at its field.
    struct VisitDraft {
        var form: VisitForm
        var errors: [String: String] = [:]
        var message: String?
    }

    /// Who did something, as the case history shows it: display names, not usernames.
    func displayNames() throws -> [String: String] {
        Dictionary(try store.users().map { ($0.username, $0.displayName) }, uniquingKeysWith: { a, _ in a })
    }

    func casePage(_ request: Request, _ context: HubRequestContext, _ user: User, visitError: String?, status: HTTPResponse.Status = .ok) throws -> Response {
        try casePage(request, context, user, draft: visitError.map { VisitDraft(form: VisitForm(), message: $0) }, status: status)
    }

    func casePage(_ request: Request, _ context: HubRequestContext, _ user: User, draft: VisitDraft?, status: HTTPResponse.Status = .ok) throws -> Response {
        let detail: CaseDetail
        switch try visibleCase(request, context, user) { case .success(let d): detail = d; case .failure(let d): return d.response }
        let c = detail.summary
        // Pages the inbox keeps on the phone for a visit without signal are logged as such.
        let prefetch = request.headers[HTTPField.Name("X-Hub-Prefetch")!] != nil
        try store.audit(user.username, prefetch ? "离线缓存案件" : "查看案件", target: "案件 #\(c.id)", detail: subjectText(c), address: context.address)
        let today = CivilDate.today
        let hType = config.types["household"]
        // Township staff read plain Chinese: rule versions, runs and sources are for operators.
        let technical = user.role != .verifier
        let isHousehold = c.householdID != nil
        let outcomes = VisitOutcome.choices(for: c.subjectKind, household: isHousehold)
        let form = draft?.form
        let names = try displayNames()
        let done = request.uri.queryParameters["done"].map(String.init)
        var values: [String: Any] = [
            "id": c.id, "severity": c.severity.rawValue, "severityName": c.severity.chinese, "status": c.status.rawValue,
            "statusName": c.status.chinese, "township": c.township ?? c.townshipCode ?? CaseStatus.awaitingDispatchName, "village": c.village ?? "",
            "period": c.period, "openedAt": String(c.openedAt.prefix(10)), "deadline": c.deadline, "overdue": c.isOverdue(today: today),
            "heading": headingText(c), "subjectText": subjectText(c), "today": today.description,
            "reopened": c.status == .open && detail.events.contains { $0.action == "重新打开" },
            "done": opt(done == "visit" ? "已销号：入户核实已记录。" : done == "reopen" ? "案件已重新打开，期限已更新。" : done == "photo" ? "照片已保存。" : nil),
            "photos": try store.photos(ofCase: c.id).map { p -> [String: Any] in
                ["id": p.id, "note": p.note, "by": names[p.uploadedBy] ?? p.uploadedBy, "at": String(p.uploadedAt.prefix(16)).replacingOccurrences(of: "T", with: " "),
                 "kept": p.keptLocation]
            },
            "canPhoto": user.role.verifies && c.status == .open,
            "visitError": opt(draft?.message), "errors": draft?.errors ?? [:],
            "form": ["visitedOn": form?.visitedOn ?? today.description, "visitors": form?.visitors ?? "", "findings": form?.findings ?? "",
                     "reason": form?.reason ?? ""],
            "canVisit": user.role.verifies && c.status == .open, "canReopen": user.role.reopens && c.status == .closed,
            "canDispatch": user.role.dispatches && c.status == .open, "unassigned": (c.townshipCode ?? "").isEmpty,
            "townships": user.role.dispatches && c.status == .open ? try townshipChoices(for: user).map { ["code": $0.code, "name": $0.name] } : [],
            "visitHeading": isHousehold || c.subjectKind == .person ? "入户核实并销号" : "实地核实并销号",
            "visitorsLabel": isHousehold || c.subjectKind == .person ? "入户人员" : "核实人员",
            "findingsHint": isHousehold || c.subjectKind == .person ? "家庭收入、支出、住房、就医等实际情况" : "现场查看的情况、原因、已采取的措施",
            "canMonitor": outcomes.contains(.monitor),
            "outcomes": outcomes.map { ["value": $0.rawValue, "label": $0.chinese, "checked": form?.outcome == $0.rawValue] as [String: Any] },
            "monitoringTypes": VisitRecord.monitoringTypes.map { ["name": $0, "selected": form?.monitoringType == $0] as [String: Any] },
            "outsideNote": opt(c.subjectKind == .person && !isHousehold ? "此人不在脱贫户和监测对象名单中。入户核实后，如确有风险请选“纳入监测”。" : nil),
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
        let regions = try store.regionNames()
        values["alerts"] = detail.alerts.map { a -> [String: Any] in
            ["title": a.title, "severity": a.severity.rawValue, "message": ResidentID.maskEmbedded(a.message), "ruleVersion": opt(technical ? a.ruleVersion : nil),
             "evidenceCount": a.evidence.count,
             "evidence": a.evidence.map { e -> [String: Any] in
                 let t = config.types[e.type]
                 return ["typeTitle": t?.title ?? "部门记录", "place": opt(technical ? "来源 \(e.source) · 运行 #\(e.run) 第 \(e.row) 行" : nil),
                         "fields": (t?.fields ?? []).compactMap { f -> [String: String]? in
                             guard let v = e.fields[f.name] else { return nil }
                             return ["label": f.title, "value": evidenceValue(v, f, regions)]
                         }]
             }]
        }
        values["events"] = detail.events.map {
            ["at": String($0.at.prefix(16)).replacingOccurrences(of: "T", with: " "), "who": names[$0.username] ?? $0.username, "action": $0.action, "detail": $0.detail]
        }
        values["visits"] = detail.visits.map { v -> [String: Any] in
            ["visitedOn": v.visitedOn, "visitors": v.visitors, "findings": ResidentID.maskEmbedded(v.findings), "outcome": v.outcome.chinese,
             "monitoringType": opt(v.outcome == .monitor ? v.monitoringType : nil), "reason": opt(v.reason.map(ResidentID.maskEmbedded))]
        }
        return page("case", headingText(c), context, values, status: status)
    }

    /// A photo from the visit (a phone's camera): checked and stripped of its location unless
    /// kept on purpose, stored with the case, audited.
    func uploadPhoto(_ request: Request, _ context: HubRequestContext, _ user: User, contentType: String, body: [UInt8]) throws -> Response {
        guard let form = MultipartForm(contentType: contentType, body: body), let sent = form.text("_csrf"), let expected = context.csrf,
              Self.constantTimeEqual(expected, sent) else {
            try store.audit(user.username, "表单校验失败", target: request.uri.path, detail: "上传照片：CSRF 令牌缺失或不符", address: context.address)
            return csrfRejected(context)
        }
        guard user.role.verifies else { return try refuse(context, user, "只有乡镇核查员可以上传核实照片。") }
        let detail: CaseDetail
        switch try visibleCase(request, context, user) { case .success(let d): detail = d; case .failure(let d): return d.response }
        let keep = form.text("keep_location") == "1"
        let note = String((form.text("note") ?? "").prefix(200))
        do {
            let photo = try PhotoSanitizer.sanitize(form.file("photo")?.body ?? [], keepLocation: keep)
            let id = try store.addPhoto(NewPhoto(caseID: detail.summary.id, contentType: photo.contentType, bytes: photo.bytes, note: note,
                                                 keptLocation: keep && photo.hadLocation, uploadedBy: user.username))
            try store.audit(user.username, "上传核实照片", target: "案件 #\(detail.summary.id)", detail: "照片 #\(id)，\(photo.bytes.count) 字节"
                            + (photo.hadLocation ? (keep ? "，保留了位置信息" : "，已去除位置信息") : ""), address: context.address)
        } catch let e as PhotoSanitizer.Refused {
            return try casePage(request, context, user, draft: VisitDraft(form: VisitForm(), message: "照片未保存：\(e.description)"), status: .badRequest)
        }
        return Self.redirect("/cases/\(detail.summary.id)?done=photo#photos")
    }

    /// A photo, to whoever may see its case.
    func showPhoto(_ request: Request, _ context: HubRequestContext, _ user: User) throws -> Response {
        guard let pid = context.parameters.get("pid").flatMap({ Int64($0) }), let (info, bytes) = try store.photo(pid),
              let detail = try store.caseDetail(info.caseID), user.sees(township: detail.summary.townshipCode) else {
            try store.audit(user.username, "拒绝访问", target: "照片 \(context.parameters.get("pid") ?? "")", detail: "不存在或不在本人范围", address: context.address)
            return message(context, "照片不存在", "找不到这张照片。", status: .notFound)
        }
        try store.audit(user.username, "查看核实照片", target: "案件 #\(info.caseID)", detail: "照片 #\(pid)", address: context.address)
        return Response(status: .ok, headers: [.contentType: info.contentType, .cacheControl: "private, no-store",
                                               .contentDisposition: "inline; filename=\"photo-\(pid)\(info.contentType == "image/png" ? ".png" : ".jpg")\""],
                        body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// One printed 入户核实表: the case, why it was raised, the members (IDs masked), blanks to fill in.
    func printSheet(_ d: CaseDetail) -> [String: Any] {
        let c = d.summary
        return ["id": c.id, "period": c.period, "township": c.township ?? c.townshipCode ?? "", "village": c.village ?? "",
                "subject": subjectText(c), "deadline": c.deadline, "severity": c.severity.chinese,
                "alerts": d.alerts.map { ["title": $0.title, "message": ResidentID.maskEmbedded($0.message)] },
                "hasMembers": !d.members.isEmpty,
                "members": d.members.map { m -> [String: String] in
                    ["name": m["name"]?.description ?? "", "relation": m["relation"]?.description ?? "", "id": ResidentID.mask(m["id_number"]?.description ?? ""),
                     "health": m["health"]?.description ?? "", "disability": m["disability"]?.description ?? ""]
                }]
    }

    /// A department record's value as township staff read it: IDs masked, yes/no, money with
    /// thousands separators, region codes with their names.
    func evidenceValue(_ v: String, _ f: RecordType.Field, _ regions: [String: String]) -> String {
        switch f.type {
        case .residentID: return ResidentID.mask(v)
        case .bool: return v == "true" || v == "1" ? "是" : "否"
        case .money: return Double(v).map { Money.format(fen: Int64(($0 * 100).rounded())) } ?? v
        case .region: return regions[v].map { "\($0)（\(v)）" } ?? v
        default: return ResidentID.maskEmbedded(v)
        }
    }

    func visit(_ request: Request, _ context: HubRequestContext, _ user: User, _ f: VisitForm) throws -> Response {
        let detail: CaseDetail
        switch try visibleCase(request, context, user) { case .success(let d): detail = d; case .failure(let d): return d.response }
        let c = detail.summary
        let allowed = VisitOutcome.choices(for: c.subjectKind, household: c.householdID != nil)
        guard let outcome = VisitOutcome(rawValue: f.outcome ?? ""), allowed.contains(outcome) else {
            return try casePage(request, context, user, draft: VisitDraft(form: f, errors: ["outcome": "请选择核实结果"], message: "请选择核实结果"), status: .badRequest)
        }
        let v = VisitRecord(visitedOn: f.visitedOn ?? "", visitors: f.visitors ?? "", findings: f.findings ?? "", outcome: outcome,
                            monitoringType: f.monitoringType.nonEmpty, reason: f.reason.nonEmpty)
        let openedOn = CivilDate.parse(String(c.openedAt.prefix(10)))
        let problems = v.fieldProblems(today: .today, openedOn: openedOn)
        if !problems.isEmpty {
            var errors: [String: String] = [:]
            for p in problems { errors[p.field] = errors[p.field].map { $0 + "；" + p.message } ?? p.message }
            return try casePage(request, context, user, draft: VisitDraft(form: f, errors: errors, message: "请检查下面标红的项目"), status: .badRequest)
        }
        do {
            try store.recordVisit(caseID: c.id, by: user, visit: v, openedOn: openedOn)
        } catch let e as CaseChangeError {
            return try casePage(request, context, user, draft: VisitDraft(form: f, message: e.description), status: .badRequest)
        }
        try store.audit(user.username, "入户核实销号", target: "案件 #\(c.id)", detail: outcome.chinese, address: context.address)
        return Self.redirect("/cases/\(c.id)?done=visit")
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
        return Self.redirect("/cases/\(detail.summary.id)?done=reopen")
    }
}
