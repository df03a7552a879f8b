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
    /// Reverse proxies whose `X-Forwarded-For` names the client (hub.yaml `web.trusted_proxies`).
    public var trustedProxies: Set<String> = ["127.0.0.1", "::1"]
    /// When set, `/metrics` answers only `Authorization: Bearer <token>` (Prometheus' `authorization` setting).
    public var metricsToken: String? = nil
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
    /// Rules that cannot fire with the mappings loaded (see `RuleCoverage`).
    public var cannotFire: (@Sendable () -> [String])? = nil
    /// The last `hubd replay`'s difference, for the 映射与规则 page.
    public var lastReplay: (@Sendable () -> ReplayReport?)? = nil
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
    /// Failed sign-ins per address.
    let throttle: LoginThrottle

    public init(store: any HubStore, config: WebConfiguration, cache: VersionedCache = VersionedCache(), throttle: LoginThrottle = LoginThrottle()) {
        self.store = store; self.config = config; self.cache = cache; self.throttle = throttle
        if store.callsWaitOnNetwork { BlockingPool.waitOnNetwork() }
    }

    /// The whole site: each area is a route collection behind the policy of the roles it
    /// serves (`RolePolicy`), after the session middleware has found who is signed in.
    public func router() -> Router<HubRequestContext> {
        let router = Router(context: HubRequestContext.self)
        router.add(middleware: SecurityMiddleware(app: self))
        router.add(middleware: SessionMiddleware(store: store))
        router.addRoutes(operationsRoutes())
        router.addRoutes(signInRoutes())
        router.addRoutes(signOutRoutes())
        router.addRoutes(inboxRoutes())
        router.addRoutes(countyRoutes())
        router.addRoutes(operatorRoutes())
        router.addRoutes(adminRoutes())
        APIRoutes(app: self).register(on: router)
        return router
    }

    /// Health, readiness, metrics, the stylesheet and the start page: no role needed.
    func operationsRoutes() -> RouteCollection<HubRequestContext> {
        let open = RouteCollection(context: HubRequestContext.self)
        open.get("static/hub.css") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/css; charset=utf-8", .cacheControl: "max-age=3600"],
                     body: .init(byteBuffer: ByteBuffer(string: Views.css)))
        }
        open.get("static/hub.js") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/javascript; charset=utf-8", .cacheControl: "max-age=3600",
                                            HTTPField.Name("X-Content-Type-Options")!: "nosniff"],
                     body: .init(byteBuffer: ByteBuffer(string: Views.script)))
        }
        open.get("sw.js") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/javascript; charset=utf-8", .cacheControl: "no-cache"],
                     body: .init(byteBuffer: ByteBuffer(string: Views.serviceWorker)))
        }
        open.get("healthz") { _, _ in "ok" }
        open.get("readyz") { _, _ in
            let ready = try await BlockingPool.run { (try? store.runs(source: nil, limit: 1)) != nil } && (config.ready?() ?? true)
            return Response(status: ready ? .ok : .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: ready ? "ready" : "not ready")))
        }
        open.get("metrics") { request, _ in
            if let token = config.metricsToken {
                let sent = request.headers[.authorization] ?? ""
                guard Self.constantTimeEqual(sent, "Bearer " + token) else {
                    return Response(status: .unauthorized, headers: [.wwwAuthenticate: "Bearer"], body: .init(byteBuffer: ByteBuffer(string: "需要令牌")))
                }
            }
            let text = try await BlockingPool.run { MetricsText.render(try store.metricsSnapshot(today: .today)) }
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        open.get("/") { _, context in
            guard let u = context.user else { return Self.redirect("/login") }
            return Self.redirect(u.role.seesCases ? (u.role.seesAllTownships ? "/dashboard" : "/inbox") : "/sources")
        }
        return open
    }

    // MARK: helpers

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
        HTTPField.Name("Referrer-Policy")!: "same-origin",
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
            v["user"] = ["username": u.username, "displayName": u.displayName, "roleName": u.role.chinese, "csrf": context.csrf ?? "",
                         "canCases": u.role.seesCases, "canDashboard": u.role.seesAllTownships, "canSources": u.role.runsSources,
                         "isAdmin": u.role == .admin] as [String: Any]
            v["csrf"] = context.csrf ?? ""
        }
        return Views.render(template, v)
    }

    func message(_ context: HubRequestContext, _ heading: String, _ text: String, status: HTTPResponse.Status) -> Response {
        page("message", heading, context, ["heading": heading, "text": text], status: status)
    }

    /// Refuses an action the user's role may not take (logged).
    func refuse(_ context: HubRequestContext, _ user: User, _ why: String) throws -> Response {
        try store.audit(user.username, "拒绝访问", target: "", detail: why, address: context.address)
        return message(context, "无权访问", why, status: .forbidden)
    }

    struct Denied: Error { var response: Response }

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
        f.search = q["q"].map { String($0.prefix(40)) }.flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
        return f
    }

    /// A request's filters as the audit log keeps them: decoded, ID numbers masked (a search may
    /// hold one, and the log can never be scrubbed).
    static func auditedQuery(_ request: Request) -> String {
        let q = request.uri.query ?? ""
        return q.isEmpty ? "无" : ResidentID.maskEmbedded(q.removingPercentEncoding ?? q)
    }

    /// Who a case is about, as township staff say it: the head of the household and its
    /// number, a person's name and masked ID, a village's name.
    func subjectText(_ c: CaseSummary) -> String {
        if let h = c.householdID { return (c.subjectName.map { "户主 \($0)" } ?? "户") + " · 户编号 \(h)" }
        switch c.subjectKind {
        case .person: return (c.subjectName ?? "姓名不详") + " · 身份证 \(ResidentID.mask(c.subjectID))"
        case .village: return "行政村 " + (c.village.map { "\($0)（\(c.subjectID)）" } ?? c.subjectID)
        case .household, .group: return c.subjectID
        }
    }

    /// A case page's heading: the household, person or place first, then the case number.
    func headingText(_ c: CaseSummary) -> String {
        if c.householdID != nil { return (c.subjectName.map { "\($0)户" } ?? "农户") + (c.village.map { "（\($0)）" } ?? "") }
        switch c.subjectKind {
        case .person: return c.subjectName ?? "名单外人员"
        case .village: return c.village ?? "行政村 \(c.subjectID)"
        case .household, .group: return c.titles.first.map { "\($0)：\(c.subjectID)" } ?? c.subjectID
        }
    }
}
