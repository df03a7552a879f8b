import Foundation
import Hub
import Hummingbird
import HTTPTypes
import NIOCore
import Logging

/// Settings of the web inbox.
public struct WebConfiguration: Sendable {
    public var deadlineDays = 15
    /// Mark cookies Secure (set when served over TLS, directly or behind a TLS proxy).
    public var secureCookies = false
    /// Where mappings and rules live, for the operators' pages.
    public var mappingsDirectory = "Mappings"
    /// The record types as loaded now: under `hubd serve`, the daemon's latest reload, so a new
    /// type's labels reach the pages without a restart.
    public var catalog: @Sendable () -> TypeCatalog = { TypeCatalog() }
    /// The record types, fixed (tests, tools); setting it replaces `catalog`.
    public var types: TypeCatalog {
        get { catalog() }
        set { let fixed = newValue; catalog = { fixed } }
    }
    public var connectors: ConnectorRegistry = ConnectorRegistry([])
    /// Whether the service is ready (mappings loaded); nil: always.
    public var ready: (@Sendable () -> Bool)? = nil
    /// Errors of mapping and rule files the daemon refused (its previous versions keep running).
    public var refused: (@Sendable () -> [String])? = nil
    public init() {}
}

/// The township inbox, the county dashboard, the operators' pages, the ledger export and the
/// JSON API. Every page checks the signed-in user's role and township scope; every case view,
/// change and export goes to the audit log.
public struct WebApp: Sendable {
    public let store: any HubStore
    public let config: WebConfiguration
    /// Inbox pages and their parts, kept until the user's cases change (`InboxStore.inboxVersion`).
    let cache: VersionedCache

    public init(store: any HubStore, config: WebConfiguration, cache: VersionedCache = VersionedCache()) {
        self.store = store; self.config = config; self.cache = cache
    }

    public func router() -> Router<HubRequestContext> {
        let router = Router(context: HubRequestContext.self)
        router.add(middleware: SessionMiddleware(store: store))
        router.get("static/hub.css") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/css; charset=utf-8", .cacheControl: "max-age=3600"],
                     body: .init(byteBuffer: ByteBuffer(string: Views.css)))
        }
        router.get("healthz") { _, _ in "ok" }
        router.get("readyz") { _, _ in
            let ready = try await BlockingPool.run { (try? store.runs(source: nil, limit: 1)) != nil } && (config.ready?() ?? true)
            return Response(status: ready ? .ok : .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: ready ? "ready" : "not ready")))
        }
        router.get("metrics") { _, _ in
            let text = try await BlockingPool.run { MetricsText.render(try store.metricsSnapshot(today: .today)) }
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        router.get("/") { _, context in
            guard let u = context.user else { return Self.redirect("/login") }
            return Self.redirect(u.role.seesCases ? (u.role.seesAllTownships ? "/dashboard" : "/inbox") : "/sources")
        }
        // Every handler below reads or writes the store, or checks a password: they run on
        // `BlockingPool`. Posts read their form first (on the event loop), then run there too.
        get(router, "login") { request, context in try self.loginPage(request, context, error: nil, username: "") }
        post(router, "login") { request, context, form in try self.login(request, context, form) }
        post(router, "logout") { request, context, form in try self.logout(request, context, form) }
        get(router, "inbox") { request, context in try self.inbox(request, context) }
        get(router, "cases/:id") { request, context in try self.casePage(request, context, visitError: nil) }
        post(router, "cases/:id/visit") { request, context, form in try self.visit(request, context, form) }
        post(router, "cases/:id/reopen") { request, context, form in try self.reopen(request, context, form) }
        get(router, "dashboard") { request, context in try self.dashboard(request, context) }
        get(router, "sources") { request, context in try self.sources(request, context) }
        get(router, "sources/:source/quarantine") { request, context in try self.quarantine(request, context) }
        get(router, "mappings") { request, context in try self.mappings(request, context) }
        router.get("ledger.csv") { request, context in try await self.ledger(request, context, xlsx: false) }
        router.get("ledger.xlsx") { request, context in try await self.ledger(request, context, xlsx: true) }
        get(router, "admin/users") { request, context in try self.usersPage(request, context, error: nil) }
        post(router, "admin/users") { request, context, form in try self.addUser(request, context, form) }
        get(router, "admin/audit") { request, context in try self.auditPage(request, context) }
        API(app: self).register(on: router)
        return router
    }

    // MARK: helpers

    /// A page that works with the store: run on `BlockingPool`.
    func get(_ router: Router<HubRequestContext>, _ path: RouterPath,
             _ handler: @Sendable @escaping (Request, HubRequestContext) throws -> Response) {
        router.get(path) { request, context in try await BlockingPool.run { try handler(request, context) } }
    }

    /// A form post: the urlencoded body (at most 64 KB) is read first, then the handler runs on `BlockingPool`.
    func post(_ router: Router<HubRequestContext>, _ path: RouterPath,
              _ handler: @Sendable @escaping (Request, HubRequestContext, [String: String]) throws -> Response) {
        router.post(path) { request, context in
            let form = try await Self.form(request)
            return try await BlockingPool.run { try handler(request, context, form) }
        }
    }

    /// Mustache renders a boxed nil as "nil": missing values become `false`, which renders nothing.
    func opt(_ v: String?) -> Any { v.map { $0 as Any } ?? false }

    static func redirect(_ to: String) -> Response {
        Response(status: .seeOther, headers: [.location: to])
    }

    static let securityHeaders: HTTPFields = [
        .contentType: "text/html; charset=utf-8",
        .cacheControl: "no-store",
        HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        HTTPField.Name("X-Frame-Options")!: "DENY",
        HTTPField.Name("Referrer-Policy")!: "no-referrer",
        HTTPField.Name("Content-Security-Policy")!: "default-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
    ]

    func page(_ template: String, _ title: String, _ context: HubRequestContext, _ values: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        htmlResponse(pageBody(template, title, context, values), status: status)
    }

    func htmlResponse(_ body: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: Self.securityHeaders, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    func pageBody(_ template: String, _ title: String, _ context: HubRequestContext, _ values: [String: Any]) -> String {
        var v = values
        v["title"] = title
        if let u = context.user {
            v["user"] = ["displayName": u.displayName, "roleName": u.role.chinese, "csrf": context.csrf ?? "",
                         "canCases": u.role.seesCases, "canDashboard": u.role.seesAllTownships, "canSources": u.role.runsSources,
                         "isAdmin": u.role == .admin] as [String: Any]
            v["csrf"] = context.csrf ?? ""
        }
        return Views.render(template, v)
    }

    func message(_ context: HubRequestContext, _ heading: String, _ text: String, status: HTTPResponse.Status) -> Response {
        page("message", heading, context, ["heading": heading, "text": text], status: status)
    }

    /// The signed-in user when their role passes `allowed`; otherwise the response to send.
    func require(_ context: HubRequestContext, _ allowed: (Role) -> Bool) -> Result<User, Denied> {
        guard let u = context.user else { return .failure(Denied(response: Self.redirect("/login"))) }
        guard allowed(u.role) else {
            try? store.audit(u.username, "拒绝访问", target: "", detail: "角色 \(u.role.rawValue)", address: context.address)
            return .failure(Denied(response: message(context, "无权访问", "您的角色（\(u.role.chinese)）不能查看此页面。", status: .forbidden)))
        }
        return .success(u)
    }

    struct Denied: Error { var response: Response }

    /// Reads a urlencoded form (at most 64 KB).
    static func form(_ request: Request) async throws -> [String: String] {
        var req = request
        let body = try await req.collectBody(upTo: 64 << 10)
        let text = String(buffer: body)
        var out: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
            if let k = kv.first { out[k] = kv.count > 1 ? kv[1] : "" }
        }
        return out
    }

    /// A form post from a signed-in user, with its CSRF token checked.
    func checkedForm(_ form: [String: String], _ context: HubRequestContext) -> [String: String]? {
        guard let expected = context.csrf, let got = form["_csrf"], Self.constantTimeEqual(expected, got) else { return nil }
        return form
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var d: UInt8 = 0
        for i in 0..<x.count { d |= x[i] ^ y[i] }
        return d == 0
    }

    func csrfRejected(_ context: HubRequestContext) -> Response {
        message(context, "表单已失效", "表单校验失败（可能是页面停留过久或来自其他网站），请返回刷新后重试。", status: .forbidden)
    }

    func sessionCookie(_ value: String, maxAge: Int) -> Cookie {
        Cookie(name: "hub_session", value: value, maxAge: maxAge, path: "/", secure: config.secureCookies, httpOnly: true, sameSite: .strict)
    }

    // MARK: sign-in

    func loginPage(_ request: Request, _ context: HubRequestContext, error: String?, username: String, status: HTTPResponse.Status = .ok) throws -> Response {
        // Double-submit token: the login form carries the same random value as a short-lived cookie.
        let token = request.cookies["hub_login"]?.value ?? Token.make(bytes: 16)
        var r = page("login", "登录", context, ["loginCsrf": token, "error": opt(error), "username": username], status: status)
        r.setCookie(Cookie(name: "hub_login", value: token, maxAge: 1800, path: "/login", secure: config.secureCookies, httpOnly: true, sameSite: .strict))
        return r
    }

    func login(_ request: Request, _ context: HubRequestContext, _ f: [String: String]) throws -> Response {
        guard let cookie = request.cookies["hub_login"]?.value, let sent = f["_csrf"], Self.constantTimeEqual(cookie, sent) else {
            return try loginPage(request, context, error: "表单已失效，请重新登录", username: "", status: .forbidden)
        }
        let username = f["username"] ?? ""
        switch try store.signIn(username: username, password: f["password"] ?? "") {
        case .success(let user, let token, _):
            try store.audit(user.username, "登录", target: "", address: context.address)
            var r = Self.redirect("/")
            r.setCookie(sessionCookie(token, maxAge: AccessPolicy.sessionHours * 3600))
            return r
        case .wrongPassword:
            try store.audit(username, "登录失败", target: "", address: context.address)
            return try loginPage(request, context, error: "用户名或密码错误（连续 \(AccessPolicy.maxFailedLogins) 次错误将锁定 \(AccessPolicy.lockMinutes) 分钟）", username: username, status: .unauthorized)
        case .locked:
            try store.audit(username, "登录被拒（已锁定）", target: "", address: context.address)
            return try loginPage(request, context, error: "密码错误次数过多，账户已锁定，请 \(AccessPolicy.lockMinutes) 分钟后再试", username: username, status: .unauthorized)
        }
    }

    func logout(_ request: Request, _ context: HubRequestContext, _ form: [String: String]) throws -> Response {
        guard context.user != nil, checkedForm(form, context) != nil else { return csrfRejected(context) }
        if let t = context.sessionToken { try store.signOut(token: t) }
        try store.audit(context.user!.username, "退出", target: "", address: context.address)
        var r = Self.redirect("/login")
        r.setCookie(sessionCookie("", maxAge: 0))
        return r
    }

    // MARK: inbox and cases

    func filter(_ request: Request) -> CaseFilter {
        let q = request.uri.queryParameters
        var f = CaseFilter()
        f.rule = q["rule"].map(String.init)
        f.village = q["village"].map(String.init)
        f.status = q["status"].flatMap { CaseStatus(rawValue: String($0)) }
        f.severity = q["severity"].flatMap { Rule.Severity(rawValue: String($0)) }
        f.period = q["period"].map(String.init)
        f.township = q["township"].map(String.init)
        f.overdueOnly = q["overdue"] == "1"
        return f
    }

    func subjectText(_ c: CaseSummary) -> String {
        if let h = c.householdID { return "户 \(h)" }
        switch c.subjectKind {
        case .person: return "个人 \(ResidentID.mask(c.subjectID))"
        case .village: return "村 \(c.subjectID)"
        case .household, .group: return c.subjectID
        }
    }

    func inbox(_ request: Request, _ context: HubRequestContext) throws -> Response {
        let user: User
        switch require(context, { $0.seesCases }) { case .success(let u): user = u; case .failure(let d): return d.response }
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

    func casePage(_ request: Request, _ context: HubRequestContext, visitError: String?, status: HTTPResponse.Status = .ok) throws -> Response {
        let user: User
        switch require(context, { $0.seesCases }) { case .success(let u): user = u; case .failure(let d): return d.response }
        let detail: CaseDetail
        switch try visibleCase(request, context, user) { case .success(let d): detail = d; case .failure(let d): return d.response }
        let c = detail.summary
        try store.audit(user.username, "查看案件", target: "案件 #\(c.id)", detail: subjectText(c), address: context.address)
        let today = CivilDate.today
        let hType = config.types["household"]
        var values: [String: Any] = [
            "id": c.id, "severity": c.severity.rawValue, "severityName": c.severity.chinese,
            "statusName": c.status.chinese, "township": c.township ?? c.townshipCode ?? "", "village": c.village ?? "",
            "period": c.period, "openedAt": String(c.openedAt.prefix(10)), "deadline": c.deadline, "overdue": c.isOverdue(today: today),
            "subjectText": subjectText(c), "today": today.description, "visitError": opt(visitError),
            "canVisit": user.role.verifies && c.status == .open, "canReopen": user.role.reopens && c.status == .closed,
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

    func visit(_ request: Request, _ context: HubRequestContext, _ form: [String: String]) throws -> Response {
        let user: User
        switch require(context, { $0.verifies }) { case .success(let u): user = u; case .failure(let d): return d.response }
        guard let f = checkedForm(form, context) else { return csrfRejected(context) }
        let detail: CaseDetail
        switch try visibleCase(request, context, user) { case .success(let d): detail = d; case .failure(let d): return d.response }
        guard let outcome = VisitOutcome(rawValue: f["outcome"] ?? "") else {
            return try casePage(request, context, visitError: "请选择核实结果", status: .badRequest)
        }
        let v = VisitRecord(visitedOn: f["visited_on"] ?? "", visitors: f["visitors"] ?? "", findings: f["findings"] ?? "", outcome: outcome,
                            monitoringType: f["monitoring_type"].flatMap { $0.isEmpty ? nil : $0 }, reason: f["reason"].flatMap { $0.isEmpty ? nil : $0 })
        do {
            try store.recordVisit(caseID: detail.summary.id, by: user, visit: v)
        } catch let e as CaseChangeError {
            return try casePage(request, context, visitError: e.description, status: .badRequest)
        }
        try store.audit(user.username, "入户核实销号", target: "案件 #\(detail.summary.id)", detail: outcome.chinese, address: context.address)
        return Self.redirect("/cases/\(detail.summary.id)")
    }

    func reopen(_ request: Request, _ context: HubRequestContext, _ form: [String: String]) throws -> Response {
        let user: User
        switch require(context, { $0.reopens }) { case .success(let u): user = u; case .failure(let d): return d.response }
        guard let f = checkedForm(form, context) else { return csrfRejected(context) }
        let detail: CaseDetail
        switch try visibleCase(request, context, user) { case .success(let d): detail = d; case .failure(let d): return d.response }
        do {
            try store.reopen(caseID: detail.summary.id, by: user, reason: f["reason"] ?? "", deadlineDays: config.deadlineDays)
        } catch let e as CaseChangeError {
            return try casePage(request, context, visitError: e.description, status: .badRequest)
        }
        try store.audit(user.username, "重新打开案件", target: "案件 #\(detail.summary.id)", detail: f["reason"] ?? "", address: context.address)
        return Self.redirect("/cases/\(detail.summary.id)")
    }

    // MARK: county and operators

    func dashboard(_ request: Request, _ context: HubRequestContext) throws -> Response {
        switch require(context, { $0.seesAllTownships }) { case .success: break; case .failure(let d): return d.response }
        let d = try store.dashboard(today: .today)
        return page("dashboard", "全县概况", context, [
            "townships": d.byTownship.map { ["code": $0.code, "name": $0.name, "open": $0.open, "overdue": $0.overdue, "closed": $0.closed, "monitored": $0.monitored] as [String: Any] },
            "rules": d.byRule.map { r -> [String: Any] in
                let judged = r.confirmed + r.rejected
                return ["title": r.title, "cases": r.cases, "confirmed": r.confirmed, "rejected": r.rejected,
                        "precision": judged == 0 ? "—" : String(format: "%.0f%%", Double(r.confirmed) / Double(judged) * 100)]
            },
            "trend": TrendChart.svg(d.byPeriod),
        ])
    }

    func sources(_ request: Request, _ context: HubRequestContext) throws -> Response {
        switch require(context, { $0.runsSources }) { case .success: break; case .failure(let d): return d.response }
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
                         "run": last.map { String($0.id) } ?? "—", "status": last.map { ["running": "进行中", "succeeded": "成功", "failed": "失败"][$0.status.rawValue] ?? "" } ?? "从未运行",
                         "failed": last?.status == .failed, "error": opt(last?.error), "read": c.read, "inserted": c.inserted, "updated": c.updated,
                         "unchanged": c.unchanged, "quarantined": c.quarantined, "at": last.map { String($0.startedAt.prefix(16)).replacingOccurrences(of: "T", with: " ") } ?? ""])
        }
        let feedAlerts = try store.feedAlerts(limit: 50).map { ["source": $0.source, "period": $0.period, "message": $0.message, "at": String($0.raisedAt.prefix(16)).replacingOccurrences(of: "T", with: " ")] }
        return page("sources", "数据来源", context, ["sources": rows, "feedAlerts": feedAlerts])
    }

    func quarantine(_ request: Request, _ context: HubRequestContext) throws -> Response {
        let user: User
        switch require(context, { $0.runsSources }) { case .success(let u): user = u; case .failure(let d): return d.response }
        let source = context.parameters.get("source") ?? ""
        guard let run = try store.runs(source: source, limit: 100).first(where: { $0.status == .succeeded }) else {
            return message(context, "没有记录", "来源 \(source) 还没有成功的运行。", status: .notFound)
        }
        try store.audit(user.username, "查看隔离区", target: source, detail: "运行 #\(run.id)", address: context.address)
        let entries = try store.quarantine(runID: run.id)
        return page("quarantine", "隔离的行", context, ["source": source, "run": run.id, "entries": entries.map { e -> [String: Any] in
            ["document": e.document, "row": e.row, "reasons": e.reasons.map(\.text).joined(separator: "；"),
             "raw": e.raw.map { "\($0[0])=\($0.count > 1 ? ResidentID.maskEmbedded(ResidentID.maskIfLikeID($0[1])) : "")" }.joined(separator: "; ")]
        }])
    }

    func mappings(_ request: Request, _ context: HubRequestContext) throws -> Response {
        switch require(context, { $0.runsSources }) { case .success: break; case .failure(let d): return d.response }
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
        let (rules, _, ruleProblems) = RuleLoader.loadDirectory(dir.appendingPathComponent("rules"), types: config.types)
        problems += ruleProblems.map(\.description)
        problems += config.refused?() ?? []
        problems = Array(Set(problems)).sorted()
        return page("mappings", "映射与规则", context, [
            "problems": problems, "mappings": maps,
            "rules": rules.map { ["name": $0.name, "title": $0.title, "subject": $0.subject.rawValue, "severity": $0.severity.chinese, "version": $0.version.prefix(8)] as [String: Any] },
        ])
    }

    // MARK: admin

    func usersPage(_ request: Request, _ context: HubRequestContext, error: String?, status: HTTPResponse.Status = .ok) throws -> Response {
        switch require(context, { $0 == .admin }) { case .success: break; case .failure(let d): return d.response }
        return page("users", "用户", context, [
            "error": opt(error),
            "users": try store.users().map { ["username": $0.username, "displayName": $0.displayName, "role": $0.role.chinese, "townships": $0.townships.joined(separator: "、")] },
            "roles": Role.allCases.map { ["value": $0.rawValue, "label": $0.chinese] },
        ], status: status)
    }

    func addUser(_ request: Request, _ context: HubRequestContext, _ form: [String: String]) throws -> Response {
        let admin: User
        switch require(context, { $0 == .admin }) { case .success(let u): admin = u; case .failure(let d): return d.response }
        guard let f = checkedForm(form, context) else { return csrfRejected(context) }
        guard let role = Role(rawValue: f["role"] ?? "") else { return try usersPage(request, context, error: "请选择角色", status: .badRequest) }
        do {
            let townships = (f["townships"] ?? "").split(whereSeparator: { $0 == "," || $0 == "，" || $0 == " " }).map(String.init)
            let u = try store.addUser(username: f["username"] ?? "", displayName: f["display_name"] ?? "", role: role, townships: townships, password: f["password"] ?? "")
            try store.audit(admin.username, "新增用户", target: u.username, detail: "\(role.rawValue) \(townships.joined(separator: ","))", address: context.address)
        } catch let e as AccessError {
            return try usersPage(request, context, error: e.description, status: .badRequest)
        }
        return Self.redirect("/admin/users")
    }

    func auditPage(_ request: Request, _ context: HubRequestContext) throws -> Response {
        switch require(context, { $0 == .admin }) { case .success: break; case .failure(let d): return d.response }
        let broken = try store.verifyAuditLog()
        return page("audit", "审计日志", context, [
            "chain": broken.map { "第 \($0) 条起不连续（可能被改动）" } ?? "完整",
            "entries": try store.auditLog().map { ["at": $0.at, "username": $0.username, "action": $0.action, "target": $0.target, "detail": $0.detail, "address": $0.address] },
        ])
    }
}

/// The monthly trend as an SVG bar chart, drawn on the server (no script, no CDN).
enum TrendChart {
    static func svg(_ periods: [(period: String, raised: Int, closed: Int)]) -> String {
        guard !periods.isEmpty else { return "<p class=\"empty\">暂无数据</p>" }
        let maxV = max(1, periods.map(\.raised).max()!)
        let w = 60, h = 160, left = 40
        var s = "<svg role=\"img\" aria-label=\"逐月预警与销号\" viewBox=\"0 0 \(left + periods.count * w + 20) \(h + 50)\" width=\"100%\" style=\"max-width:\(left + periods.count * w + 20)px\">"
        s += "<line x1=\"\(left)\" y1=\"\(h)\" x2=\"\(left + periods.count * w)\" y2=\"\(h)\" stroke=\"#8aa0b4\"/>"
        for (i, p) in periods.enumerated() {
            let x = left + i * w + 8
            let rh = Int(Double(p.raised) / Double(maxV) * Double(h - 20))
            let ch = Int(Double(p.closed) / Double(maxV) * Double(h - 20))
            s += "<rect x=\"\(x)\" y=\"\(h - rh)\" width=\"20\" height=\"\(rh)\" fill=\"#1f5fa8\"><title>\(p.period) 立案 \(p.raised)</title></rect>"
            s += "<rect x=\"\(x + 22)\" y=\"\(h - ch)\" width=\"20\" height=\"\(ch)\" fill=\"#27ae60\"><title>\(p.period) 销号 \(p.closed)</title></rect>"
            s += "<text x=\"\(x + 21)\" y=\"\(h - rh - 4)\" font-size=\"11\" text-anchor=\"middle\">\(p.raised)</text>"
            s += "<text x=\"\(x + 21)\" y=\"\(h + 16)\" font-size=\"12\" text-anchor=\"middle\">\(XLSXWriter.escape(p.period))</text>"
        }
        s += "<rect x=\"\(left)\" y=\"\(h + 28)\" width=\"12\" height=\"12\" fill=\"#1f5fa8\"/><text x=\"\(left + 16)\" y=\"\(h + 39)\" font-size=\"12\">立案</text>"
        s += "<rect x=\"\(left + 60)\" y=\"\(h + 28)\" width=\"12\" height=\"12\" fill=\"#27ae60\"/><text x=\"\(left + 76)\" y=\"\(h + 39)\" font-size=\"12\">销号</text>"
        return s + "</svg>"
    }
}

/// HTML text written outside the templates.
enum HTML {
    /// Escapes text for element content and quoted attribute values.
    static func escape(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 == 0x26 || $0 == 0x3C || $0 == 0x3E || $0 == 0x22 || $0 == 0x27 }) else { return s }
        var out = ""
        out.reserveCapacity(s.utf8.count + 16)
        for ch in s.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    static func option(_ value: String, _ label: String, selected: Bool) -> String {
        "<option value=\"\(escape(value))\"\(selected ? " selected" : "")>\(escape(label))</option>"
    }
}
