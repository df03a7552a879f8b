import Foundation
import Testing
@testable import Hub
@testable import HubSQLite
@testable import HubWeb
import Connectors
import SimCounty

/// The inbox and the API over real HTTP on 127.0.0.1: each role against each page and action,
/// with every denial.
@Suite(.serialized) struct WebTests {
    struct Fixture {
        let app: RunningApp
        let store: SQLiteStore
        /// A case in township A (verifier "va") and one in township B (verifier "vb").
        let caseA: CaseSummary
        let caseB: CaseSummary
        func client() -> TestHTTP { TestHTTP(port: app.port) }
    }

    static let password = "correct-horse-1"

    static func fixture(_ configure: (inout WebConfiguration) -> Void = { _ in }) async throws -> Fixture {
        let county = try RulesTests.pulledCounty()
        try county.store.saveAlerts(try county.engine().evaluate(period: county.sim.county.config.period))
        let store = county.store
        let admin = try store.addUser(username: "admin", displayName: "管理员", role: .admin, townships: [], password: password)
        let all = try store.cases(for: admin)
        let household = all.filter { $0.householdID != nil && $0.townshipCode != nil }
        let a = household[0]
        let b = try #require(household.first { $0.townshipCode != a.townshipCode })
        try store.addUser(username: "op", displayName: "操作员", role: .operator, townships: [], password: password)
        try store.addUser(username: "an", displayName: "分析员", role: .analyst, townships: [], password: password)
        try store.addUser(username: "va", displayName: "甲乡核查员", role: .verifier, townships: [a.townshipCode!], password: password)
        try store.addUser(username: "vb", displayName: "乙乡核查员", role: .verifier, townships: [b.townshipCode!], password: password)
        var config = WebConfiguration()
        config.types = shippedTypes
        config.connectors = BuiltinConnectors.registry
        config.mappingsDirectory = repoRoot.appendingPathComponent("Mappings").path
        configure(&config)
        let app = try await RunningApp(WebApp(store: store, config: config))
        return Fixture(app: app, store: store, caseA: a, caseB: b)
    }

    @Test func theMappingsPageShowsTheLastReplaysDifference() async throws {
        let box = Locked<ReplayReport?>(nil)
        let f = try await Self.fixture { $0.lastReplay = { box.value } }
        defer { f.app.stop() }
        var c = f.client()
        #expect(try c.signIn("op", Self.password).status == 303)
        let empty = try c.request("GET", "/mappings").text
        #expect(empty.contains("上线前试算") && empty.contains("hubd replay"))
        var report = ReplayReport(period: "2026-10", at: "2026-11-03T10:00:00+08:00", mappings: "/srv/hub/Mappings-new", rules: "/srv/hub/Mappings-new/rules")
        var line = ReplayReport.RuleLine(rule: "medical_outside_roster", title: "名单外人员大额医疗自付")
        line.before = 2; line.after = 3; line.raised = 1
        line.raisedExamples = [.init(subject: "411081********2214", after: "个人自付最高 12,187.52 元（预警线 10,000 元）<b>")]
        report.ruleLines = [line, ReplayReport.RuleLine(rule: "water_outage", title: "停水")]
        report.sources = [.init(source: "medical-claims", status: .replayed), .init(source: "roster", status: .unchanged)]
        box.value = report
        let page = try c.request("GET", "/mappings").text
        #expect(page.contains("最近一次重放：2026-10"))
        #expect(page.contains("预警差异：新增 1，撤回 0，内容变化 0"))
        #expect(page.contains("新增 411081********2214：个人自付最高 12,187.52 元（预警线 10,000 元）&lt;b&gt;"), "escaped")
        #expect(page.contains("medical-claims：按新映射重读") && !page.contains("roster：映射未变"), "\(page.components(separatedBy: "id=\"replay\"").last ?? "")")
        #expect(!page.contains("停水"), "rules without a difference are not listed")
    }

    @Test func everyRoleAgainstEveryPageAndEveryDenial() async throws {
        let f = try await Self.fixture()
        defer { f.app.stop() }
        let a = f.caseA.id, b = f.caseB.id
        let pages = ["/inbox", "/cases/\(a)", "/cases/\(b)", "/dashboard", "/sources", "/mappings", "/sources/medical-claims/quarantine",
                     "/admin/users", "/admin/audit", "/ledger.csv", "/ledger.xlsx", "/api/v1/cases", "/api/v1/cases/\(a)", "/api/v1/cases/\(b)"]
        // Expected status per role, in the order of `pages`.
        let expected: [String: [Int]] = [
            "admin": [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200],
            "op":    [403, 403, 403, 403, 200, 200, 200, 403, 403, 403, 403, 403, 403, 403],
            "an":    [200, 200, 200, 200, 403, 403, 403, 403, 403, 200, 200, 200, 200, 200],
            // Another township's case answers as if it did not exist (404), page and API alike.
            "va":    [200, 200, 404, 403, 403, 403, 403, 403, 403, 200, 200, 200, 200, 404],
            "vb":    [200, 404, 200, 403, 403, 403, 403, 403, 403, 200, 200, 200, 404, 200],
        ]
        var anonymous = f.client()
        for p in pages {
            let r = try anonymous.request("GET", p)
            if p.hasPrefix("/api/") { #expect(r.status == 401, "anonymous \(p)") }
            else { #expect(r.status == 303 && r.header("Location")?.hasPrefix("/login") == true, "anonymous \(p) → \(r.status)") }
        }
        for (user, statuses) in expected.sorted(by: { $0.key < $1.key }) {
            var c = f.client()
            #expect(try c.signIn(user, Self.password).status == 303)
            for (p, want) in zip(pages, statuses) {
                let r = try c.request("GET", p)
                #expect(r.status == want, "\(user) GET \(p): \(r.status), expected \(want)")
            }
        }
        // A verifier's inbox and export hold only their township's cases.
        var va = f.client()
        try va.signIn("va", Self.password)
        let inbox = try va.request("GET", "/inbox").text
        #expect(inbox.contains("/cases/\(a)\"") && !inbox.contains("/cases/\(b)\""))
        let csv = try va.request("GET", "/ledger.csv").text
        #expect(csv.hasPrefix("\u{FEFF}案件号,"))
        #expect(csv.contains("\r\n\(a),") && !csv.contains("\r\n\(b),"))
        let api = try va.request("GET", "/api/v1/cases").text
        #expect(api.contains("\"id\":\(a)") && !api.contains("\"id\":\(b),"))
    }

    @Test func aVerifierRecordsAVisitAndClosesTheCaseOthersCannot() async throws {
        let f = try await Self.fixture()
        defer { f.app.stop() }
        let a = f.caseA.id
        var va = f.client()
        try va.signIn("va", Self.password)
        let page = try va.request("GET", "/cases/\(a)")
        let csrf = try #require(TestHTTP.hidden(page.text, "_csrf"))
        let visit: [(String, String)] = [("visited_on", CivilDate.today.description), ("visitors", "王五、李四（村干部）"),
                                         ("findings", "=HYPERLINK(\"http://x\")家中有病人，已就医"), ("outcome", "monitor"), ("monitoring_type", "突发严重困难户")]
        // Without its CSRF token the form is refused and nothing changes.
        #expect(try va.request("POST", "/cases/\(a)/visit", body: TestHTTP.form(visit)).status == 403)
        #expect(try f.store.caseDetail(a)?.summary.status == .open)
        // A closing without an outcome category is refused with the reason.
        let missing = try va.request("POST", "/cases/\(a)/visit", body: TestHTTP.form([("_csrf", csrf)] + visit.filter { $0.0 != "monitoring_type" }))
        #expect(missing.status == 400 && missing.text.contains("<p class=\"field-error\">纳入监测须选择监测对象类别</p>"))
        // …and comes back with everything typed kept, the chosen outcome still chosen.
        #expect(missing.text.contains("value=\"王五、李四（村干部）\"") && missing.text.contains("家中有病人，已就医</textarea>"))
        #expect(missing.text.contains("value=\"monitor\" required checked"))
        // A visit dated before the case was opened is refused at the date field.
        let opened = String(f.caseA.openedAt.prefix(10))
        let early = visit.map { $0.0 == "visited_on" ? ($0.0, CivilDate.parse(opened)!.adding(days: -1).description) : $0 }
        let refused = try va.request("POST", "/cases/\(a)/visit", body: TestHTTP.form([("_csrf", csrf)] + early))
        #expect(refused.status == 400 && refused.text.contains("核实日期不能早于立案日期 \(opened)"))
        // The verifier of another township, and the county analyst (read only), cannot.
        var vb = f.client()
        try vb.signIn("vb", Self.password)
        let vbToken = try #require(TestHTTP.hidden(try vb.request("GET", "/inbox").text, "_csrf"))
        #expect(try vb.request("POST", "/cases/\(a)/visit", body: TestHTTP.form([("_csrf", vbToken)] + visit)).status == 404)
        var an = f.client()
        try an.signIn("an", Self.password)
        let anToken = try #require(TestHTTP.hidden(try an.request("GET", "/inbox").text, "_csrf"))
        #expect(try an.request("POST", "/cases/\(a)/visit", body: TestHTTP.form([("_csrf", anToken)] + visit)).status == 403)
        // The verifier closes it.
        let done = try va.request("POST", "/cases/\(a)/visit", body: TestHTTP.form([("_csrf", csrf)] + visit))
        #expect(done.status == 303 && done.header("Location") == "/cases/\(a)?done=visit")
        // The page says it worked, and the history names the verifier as people know them.
        let confirmed = try va.request("GET", "/cases/\(a)?done=visit").text
        #expect(confirmed.contains("已销号：入户核实已记录。") && confirmed.contains("甲乡核查员：销号"))
        let closed = try #require(try f.store.caseDetail(a))
        #expect(closed.summary.status == .closed && closed.summary.outcome == "monitor")
        #expect(closed.visits.first?.monitoringType == "突发严重困难户")
        // The ledger shows it as 销号, with the formula neutralised.
        let csv = try va.request("GET", "/ledger.csv?status=closed").text
        #expect(csv.contains("已销号") && csv.contains("'=HYPERLINK"))
        // A verifier cannot reopen; the county can.
        #expect(try va.request("POST", "/cases/\(a)/reopen", body: TestHTTP.form([("_csrf", csrf), ("reason", "x")])).status == 403)
        let reopened = try an.request("POST", "/cases/\(a)/reopen", body: TestHTTP.form([("_csrf", anToken), ("reason", "复核发现收入登记有误")]))
        #expect(reopened.status == 303)
        #expect(try an.request("GET", "/cases/\(a)").text.contains("已重新打开"), "a reopened case does not look new")
        #expect(try f.store.caseDetail(a)?.summary.status == .open)
        #expect(try f.store.caseDetail(a)?.events.map(\.action) == ["销号", "重新打开"])
        // Every step is in the audit log, and the chain holds.
        let actions = try f.store.auditLog(limit: 1000).map(\.action)
        for needed in ["登录", "查看案件", "入户核实销号", "导出台账", "重新打开案件", "拒绝访问"] { #expect(actions.contains(needed), "audit lacks \(needed)") }
        #expect(try f.store.verifyAuditLog() == nil)
    }

    @Test func theCountyDispatchesCasesNoTownshipOwns() async throws {
        let f = try await Self.fixture()
        defer { f.app.stop() }
        // People outside the roster in feeds without a village or township code (medical claims
        // carry only the county's code) wait in the county's queue; nobody else can reach them.
        let admin = try #require(try f.store.users().first { $0.username == "admin" })
        var queue = CaseFilter()
        queue.awaitingDispatch = true
        let waiting = try f.store.cases(for: admin, filter: queue, today: .today)
        #expect(waiting.count >= 2, "the simulated county has unroutable cases: \(waiting.count)")
        var va = f.client()
        try va.signIn("va", Self.password)
        #expect(try va.request("GET", "/dispatch").status == 403)
        let vaToken = try #require(TestHTTP.hidden(try va.request("GET", "/inbox").text, "_csrf"))
        let township = try #require(f.caseA.townshipCode)
        let picked = Array(waiting.prefix(2)).map(\.id)
        let form = [("_csrf", vaToken), ("township", township)] + picked.map { ("ids[]", String($0)) }
        #expect(try va.request("POST", "/dispatch", body: TestHTTP.form(form)).status == 403, "a verifier cannot dispatch")
        #expect(try va.request("GET", "/cases/\(picked[0])").status == 404)
        var an = f.client()
        try an.signIn("an", Self.password)
        let dashboard = try an.request("GET", "/dashboard").text
        #expect(dashboard.contains("<b>\(waiting.count)</b> 件案件没有可用的乡镇信息"), "the dashboard says how many wait")
        let page = try an.request("GET", "/dispatch")
        #expect(page.status == 200 && page.text.contains("共 <b>\(waiting.count)</b> 件"))
        // Each case shows who the person is (masked) and what the records say about where.
        #expect(page.text.contains("姓名："), "name clue")
        #expect(!page.text.contains(waiting[0].subjectID), "IDs are masked")
        let anToken = try #require(TestHTTP.hidden(page.text, "_csrf"))
        // No township chosen, or one that does not exist: refused, nothing moves.
        let bogus = try an.request("POST", "/dispatch", body: TestHTTP.form([("_csrf", anToken), ("township", "999999999")] + picked.map { ("ids[]", String($0)) }))
        #expect(bogus.status == 400 && bogus.text.contains("请选择要分派到的乡镇"))
        #expect(try f.store.cases(for: admin, filter: queue, today: .today).count == waiting.count)
        let done = try an.request("POST", "/dispatch", body: TestHTTP.form([("_csrf", anToken), ("township", township)] + picked.map { ("ids[]", String($0)) }))
        #expect(done.status == 200 && done.text.contains("已分派 2 件"), "\(done.status)")
        #expect(try f.store.cases(for: admin, filter: queue, today: .today).count == waiting.count - 2)
        // The township's verifier now has them, with the dispatch in the history.
        let inbox = try va.request("GET", "/inbox?status=open").text
        #expect(picked.allSatisfy { inbox.contains("/cases/\($0)\"") }, "in the township's inbox")
        let casePage = try va.request("GET", "/cases/\(picked[0])")
        #expect(casePage.status == 200 && casePage.text.contains("分派 — 分派至"), "history shows the dispatch")
        #expect(try f.store.caseDetail(picked[1])?.events.map(\.action) == ["分派"])
        // From a case page, one case at a time, back to the case: a dispatched case can be
        // sent on to another township (改派) while it is open.
        let other = try #require(f.caseB.townshipCode)
        let caseView = try an.request("GET", "/cases/\(picked[0])").text
        #expect(caseView.contains("改派乡镇"))
        let one = try an.request("POST", "/dispatch", body: TestHTTP.form([("_csrf", anToken), ("township", other), ("ids[]", String(picked[0])), ("back", "case")]))
        #expect(one.status == 303 && one.header("Location") == "/cases/\(picked[0])")
        #expect(try va.request("GET", "/cases/\(picked[0])").status == 404)
        #expect(try f.store.caseDetail(picked[0])?.events.map(\.action) == ["分派", "分派"])
        // /metrics counts what still waits.
        var anyone = f.client()
        let metrics = try anyone.request("GET", "/metrics").text
        #expect(metrics.contains("hub_cases_awaiting_dispatch \(waiting.count - 2)\n"), "metrics")
        #expect(try f.store.auditLog(limit: 100).contains { $0.action == "分派案件" })
    }

    @Test func anAnalystBoundToAnAreaSeesAndMovesOnlyItsCases() async throws {
        let f = try await Self.fixture()
        defer { f.app.stop() }
        let a = try #require(f.caseA.townshipCode), b = try #require(f.caseB.townshipCode)
        let known = Set(try f.store.regionNames().keys.filter { $0.count == 9 })
        // Area codes are checked: a county of the roster is accepted, one it does not know is not;
        // administrators and operators have no area.
        try f.store.addUser(username: "ta", displayName: "甲乡分析员", role: .analyst, townships: [a], password: Self.password, knownTownships: known)
        try f.store.addUser(username: "cy", displayName: "县分析员", role: .analyst, townships: [String(a.prefix(6))], password: Self.password, knownTownships: known)
        #expect(throws: AccessError.self) { try f.store.addUser(username: "xx", displayName: "x", role: .analyst, townships: ["419999"], password: Self.password, knownTownships: known) }
        #expect(throws: AccessError.self) { try f.store.addUser(username: "xo", displayName: "x", role: .operator, townships: [a], password: Self.password) }
        #expect(throws: AccessError.self) { try f.store.addUser(username: "xv", displayName: "x", role: .verifier, townships: ["41108"], password: Self.password) }
        var ta = f.client()
        try ta.signIn("ta", Self.password)
        let board = try ta.request("GET", "/dashboard")
        #expect(board.status == 200 && board.text.contains("/inbox?township=\(a)") && !board.text.contains("/inbox?township=\(b)"),
                "the dashboard lists the area's township only")
        #expect(try ta.request("GET", "/cases/\(f.caseA.id)").status == 200)
        #expect(try ta.request("GET", "/cases/\(f.caseB.id)").status == 404, "a case outside the area does not exist for them")
        let queuePage = try ta.request("GET", "/dispatch")
        #expect(queuePage.status == 200 && queuePage.text.contains("共 <b>0</b> 件"), "the dispatch queue is the city's")
        let token = try #require(TestHTTP.hidden(queuePage.text, "_csrf"))
        let admin = try #require(try f.store.users().first { $0.username == "admin" })
        var queue = CaseFilter(); queue.awaitingDispatch = true
        let waiting = try #require(try f.store.cases(for: admin, filter: queue, today: .today).first)
        let grab = try ta.request("POST", "/dispatch", body: TestHTTP.form([("_csrf", token), ("township", a), ("ids[]", String(waiting.id))]))
        #expect(grab.text.contains("已分派 0 件"), "a queued case cannot be taken into the area")
        #expect(try f.store.caseDetail(waiting.id)?.summary.townshipCode == nil)
        let out = try ta.request("POST", "/dispatch", body: TestHTTP.form([("_csrf", token), ("township", b), ("ids[]", String(f.caseA.id))]))
        #expect(out.status == 400 && out.text.contains("请选择要分派到的乡镇"), "nor a case sent out of it")
        #expect(try f.store.caseDetail(f.caseA.id)?.summary.townshipCode == a)
        // Bound to the county: every township of it, still not the queue.
        var cy = f.client()
        try cy.signIn("cy", Self.password)
        #expect(try cy.request("GET", "/cases/\(f.caseB.id)").status == 200)
        let county = try cy.request("GET", "/dashboard").text
        #expect(county.contains("/inbox?township=\(a)") && county.contains("/inbox?township=\(b)") && !county.contains(CaseStatus.awaitingDispatchName))
    }

    @Test func apiVisitNeedsItsTokenAndScope() async throws {
        let f = try await Self.fixture()
        defer { f.app.stop() }
        var va = f.client()
        try va.signIn("va", Self.password)
        let me = try JSONSerialization.jsonObject(with: Data(try va.request("GET", "/api/v1/me").body)) as! [String: Any]
        let token = try #require(me["csrf_token"] as? String)
        let body = #"{"visited_on":"\#(CivilDate.today.description)","visitors":"王五","findings":"核实无异常","outcome":"no_risk","reason":"收入稳定"}"#
        #expect(try va.request("POST", "/api/v1/cases/\(f.caseA.id)/visit", body: body, contentType: "application/json").status == 403)
        #expect(try va.request("POST", "/api/v1/cases/\(f.caseB.id)/visit", body: body, contentType: "application/json", headers: [("X-CSRF-Token", token)]).status == 404)
        let ok = try va.request("POST", "/api/v1/cases/\(f.caseA.id)/visit", body: body, contentType: "application/json", headers: [("X-CSRF-Token", token)])
        #expect(ok.status == 200)
        #expect(try f.store.caseDetail(f.caseA.id)?.summary.outcome == "no_risk")
        let doc = try JSONSerialization.jsonObject(with: Data(try va.request("GET", "/api/v1/openapi.json").body)) as? [String: Any]
        #expect((doc?["paths"] as? [String: Any])?.keys.contains("/cases/{id}/visit") == true)
    }

    @Test func signInLocksAfterRepeatedFailuresAndRenewsTheSession() async throws {
        let f = try await Self.fixture()
        defer { f.app.stop() }
        var c = f.client()
        try c.signIn("va", Self.password)
        let first = c.cookies["hub_session"]
        var d = f.client()
        try d.signIn("va", Self.password)
        #expect(first != nil && d.cookies["hub_session"] != nil && first != d.cookies["hub_session"])
        // The cookie is HttpOnly and SameSite.
        var e = f.client()
        let r = try e.signIn("va", Self.password)
        let cookie = try #require(r.setCookies.first { $0.hasPrefix("hub_session=") })
        #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"))
        // Sign-out ends the session.
        let token = try #require(TestHTTP.hidden(try c.request("GET", "/inbox").text, "_csrf"))
        #expect(try c.request("POST", "/logout", body: TestHTTP.form([("_csrf", token)])).status == 303)
        #expect(try c.request("GET", "/inbox").status == 303)
        // Five wrong passwords lock the account; then even the right one is refused.
        var x = f.client()
        for _ in 0..<AccessPolicy.maxFailedLogins { #expect(try x.signIn("vb", "wrong-password").status == 401) }
        let locked = try x.signIn("vb", Self.password)
        // …with the very answer a wrong password or an unknown name gets: nobody learns which
        // accounts exist or are locked.
        func refusal(_ html: String) -> String? { html.range(of: "<p class=\"error\">[^<]*</p>", options: .regularExpression).map { String(html[$0]) } }
        let unknown = try x.signIn("nobody-here", "wrong-password")
        let wrong = try x.signIn("va", "wrong-password")
        #expect(locked.status == 401 && unknown.status == 401 && refusal(locked.text) != nil)
        #expect(refusal(locked.text) == refusal(unknown.text) && refusal(locked.text) == refusal(wrong.text))
        // A login form without its token is refused.
        var y = f.client()
        #expect(try y.request("POST", "/login", body: TestHTTP.form([("username", "va"), ("password", Self.password)])).status == 403)
        // Passwords never reach the audit log.
        #expect(try !f.store.auditLog(limit: 1000).contains { $0.detail.contains(Self.password) || $0.target.contains("wrong-password") })
        // After a page asked for while signed out, signing in returns there — but only to a page of this site.
        var z = f.client()
        let asked = try z.request("GET", "/cases/\(f.caseA.id)")
        let loginURL = try #require(asked.header("Location"))
        #expect(loginURL == "/login?next=%2Fcases%2F\(f.caseA.id)")
        let form = try z.request("GET", loginURL).text
        #expect(TestHTTP.hidden(form, "next") == "/cases/\(f.caseA.id)")
        let back = try z.request("POST", "/login", body: TestHTTP.form([("_csrf", try #require(TestHTTP.hidden(form, "_csrf"))), ("username", "va"),
                                                                       ("password", Self.password), ("next", "/cases/\(f.caseA.id)")]))
        #expect(back.status == 303 && back.header("Location") == "/cases/\(f.caseA.id)")
        var evil = f.client()
        let evilForm = try evil.request("GET", "/login").text
        let offsite = try evil.request("POST", "/login", body: TestHTTP.form([("_csrf", try #require(TestHTTP.hidden(evilForm, "_csrf"))), ("username", "va"),
                                                                             ("password", Self.password), ("next", "//evil.example/x")]))
        #expect(offsite.status == 303 && offsite.header("Location") == "/")
        // Nor a control character that a browser drops from the Location ("/\t/evil" is "//evil").
        for sneaky in ["/\t/evil.example", "/\\evil.example", "/\n/evil.example"] {
            var s = f.client()
            let form = try s.request("GET", "/login").text
            let r = try s.request("POST", "/login", body: TestHTTP.form([("_csrf", try #require(TestHTTP.hidden(form, "_csrf"))), ("username", "va"),
                                                                        ("password", Self.password), ("next", sneaky)]))
            #expect(r.status == 303 && r.header("Location") == "/", "\(sneaky.debugDescription) → \(r.header("Location") ?? "")")
        }
        // Many failures from one address: the address is refused for a while, whatever the name.
        // Behind the local reverse proxy, the address is the one it reports, so others go on.
        var w = f.client()
        let proxied = [("X-Forwarded-For", "10.1.2.3")]
        for i in 0..<LoginThrottle.limit {
            let form = try w.request("GET", "/login").text
            _ = try w.request("POST", "/login", body: TestHTTP.form([("_csrf", try #require(TestHTTP.hidden(form, "_csrf"))), ("username", "probe\(i)"),
                                                                    ("password", "wrong-password")]), headers: proxied)
        }
        let blocked = try w.request("GET", "/login").text
        #expect(try w.request("POST", "/login", body: TestHTTP.form([("_csrf", try #require(TestHTTP.hidden(blocked, "_csrf"))), ("username", "va"),
                                                                    ("password", Self.password)]), headers: proxied).status == 429)
        var other = f.client()
        #expect(try other.signIn("va", Self.password).status == 303, "another client behind the same proxy is not blocked")
        #expect(try f.store.auditLog(limit: 30).contains { $0.address == "10.1.2.3" }, "the audit log names the real client")
    }

    @Test func theAdministratorUnlocksDisablesAndResetsAccountsUnderThePasswordPolicy() async throws {
        let f = try await Self.fixture()
        defer { f.app.stop() }
        var admin = f.client()
        try admin.signIn("admin", Self.password)
        let page = try admin.request("GET", "/admin/users").text
        let token = try #require(TestHTTP.hidden(page, "_csrf"))
        func post(_ path: String, _ pairs: [(String, String)]) throws -> TestHTTP.Reply {
            try admin.request("POST", path, body: TestHTTP.form([("_csrf", token)] + pairs))
        }
        // The password policy and the county's townships, on a new account.
        let township = try #require(f.caseA.townshipCode)
        for (password, why) in [("1234567890", "太常见"), ("aaaaaaaaaaaa", "重复"), ("short1", "至少 10"), ("newverifier-2026", "包含用户名")] {
            let r = try post("/admin/users", [("username", "newverifier"), ("display_name", "新核查员"), ("role", "verifier"), ("townships", township), ("password", password)])
            #expect(r.status == 400 && r.text.contains(why), "\(password): \(r.status)")
        }
        let outside = try post("/admin/users", [("username", "newverifier"), ("display_name", "新核查员"), ("role", "verifier"), ("townships", "999999101"), ("password", "Long-enough-2026")])
        #expect(outside.status == 400 && outside.text.contains("不在花名册的乡镇里"))
        #expect(try post("/admin/users", [("username", "newverifier"), ("display_name", "新核查员"), ("role", "verifier"), ("townships", township),
                                          ("password", "Long-enough-2026")]).status == 303)
        // A locked verifier is unlocked; a disabled one is signed out at once and cannot sign in.
        var vb = f.client()
        for _ in 0..<AccessPolicy.maxFailedLogins { _ = try vb.signIn("vb", "wrong-password") }
        #expect(try admin.request("GET", "/admin/users").text.contains("已锁定"))
        #expect(try post("/admin/users/vb", [("action", "unlock")]).text.contains("已解锁：vb"))
        #expect(try vb.signIn("vb", Self.password).status == 303)
        #expect(try vb.request("GET", "/inbox").status == 200)
        #expect(try post("/admin/users/vb", [("action", "disable")]).text.contains("已停用：vb"))
        #expect(try vb.request("GET", "/inbox").status == 303, "the session ended")
        #expect(try vb.signIn("vb", Self.password).status == 401)
        #expect(try post("/admin/users/admin", [("action", "disable")]).status == 400, "not one's own account")
        #expect(try post("/admin/users/vb", [("action", "enable")]).status == 200)
        // A reset password follows the policy, replaces the old one and ends the sessions.
        #expect(try post("/admin/users/vb", [("action", "reset"), ("password", "1111111111")]).status == 400)
        #expect(try post("/admin/users/vb", [("action", "reset"), ("password", "Another-long-2026")]).status == 200)
        #expect(try vb.signIn("vb", Self.password).status == 401 && vb.signIn("vb", "Another-long-2026").status == 303)
        let actions = try f.store.auditLog(limit: 100).map(\.action)
        for needed in ["解锁账户", "停用账户", "启用账户", "重置密码账户", "新增用户"] { #expect(actions.contains(needed), "audit lacks \(needed)") }
        // The audit page filters by action and user, and pages back in time.
        let logins = try admin.request("GET", "/admin/audit?action=%E7%99%BB%E5%BD%95&user=vb").text
        let rows = logins.components(separatedBy: "<td data-label=\"操作\">").dropFirst().map { $0.prefix(while: { $0 != "<" }) }
        #expect(!rows.isEmpty && rows.allSatisfy { $0 == "登录" }, "\(rows)")
        #expect(logins.components(separatedBy: "<td data-label=\"用户\">vb</td>").count - 1 == rows.count)
    }

    /// A JPEG as a phone camera writes it: an EXIF block whose GPS directory holds a latitude.
    static func cameraJPEG() -> (bytes: [UInt8], latitude: [UInt8]) {
        func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func le32(_ v: Int) -> [UInt8] { le16(v & 0xFFFF) + le16(v >> 16) }
        let latitude = le32(34) + le32(1) + le32(12) + le32(1) + le32(3456) + le32(100)
        var tiff: [UInt8] = Array("II".utf8) + le16(42) + le32(8)
        tiff += le16(1) + le16(0x8825) + le16(4) + le32(1) + le32(26) + le32(0)           // IFD0: the GPS pointer
        tiff += le16(2) + le16(0x0001) + le16(2) + le32(2) + Array("N\0\0\0".utf8)      // GPS IFD at 26: N…
        tiff += le16(0x0002) + le16(5) + le32(3) + le32(56) + le32(0)                      // …and the latitude at 56
        tiff += latitude
        let app1 = Array("Exif\0\0".utf8) + tiff
        let bytes: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE1] + [UInt8((app1.count + 2) >> 8), UInt8((app1.count + 2) & 0xFF)] + app1
            + [0xFF, 0xDA, 0x00, 0x02] + Array(repeating: 0x55, count: 64) + [0xFF, 0xD9]
        return (bytes, latitude)
    }

    static func multipart(_ fields: [(String, String)], file: [UInt8], boundary: String = "----hubtest7MA4YWxkTrZu0gW") -> String {
        var s = ""
        for (k, v) in fields { s += "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(k)\"\r\n\r\n\(v)\r\n" }
        s += "--\(boundary)\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"IMG_0001.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
        // Bytes as they go on the wire; each as one scalar, which the test client sends back as that byte.
        let bytes = Array(s.utf8) + file + Array("\r\n--\(boundary)--\r\n".utf8)
        return String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
    }

    @Test func visitPhotosLoseTheirLocationUnlessKeptAndStayInScope() async throws {
        let f = try await Self.fixture()
        defer { f.app.stop() }
        var va = f.client()
        try va.signIn("va", Self.password)
        let a = f.caseA.id
        let token = try #require(TestHTTP.hidden(try va.request("GET", "/cases/\(a)").text, "_csrf"))
        let (jpeg, latitude) = Self.cameraJPEG()
        func upload(_ client: inout TestHTTP, _ fields: [(String, String)], _ file: [UInt8], case id: Int64) throws -> TestHTTP.Reply {
            // The test client sends text: the file goes as Latin-1 so every byte arrives as it was.
            try client.request("POST", "/cases/\(id)/photos", body: Self.multipart(fields, file: file), contentType: "multipart/form-data; boundary=----hubtest7MA4YWxkTrZu0gW", latin1: true)
        }
        let r = try upload(&va, [("_csrf", token), ("note", "住房")], jpeg, case: a)
        #expect(r.status == 303 && r.header("Location") == "/cases/\(a)?done=photo#photos", "\(r.status) \(r.text.prefix(300))")
        let stored = try #require(try f.store.photos(ofCase: a).first)
        let kept = try #require(try f.store.photo(stored.id)).bytes
        #expect(kept.count == jpeg.count && Self.contains(jpeg, latitude) && !Self.contains(kept, latitude), "the latitude is gone")
        #expect(stored.keptLocation == false && stored.note == "住房")
        // Kept on purpose: as it was taken.
        _ = try upload(&va, [("_csrf", token), ("keep_location", "1")], jpeg, case: a)
        let second = try #require(try f.store.photos(ofCase: a).last)
        #expect(try f.store.photo(second.id)?.bytes == jpeg && second.keptLocation)
        // Not a photo, or without the token: refused, nothing kept.
        let text = try upload(&va, [("_csrf", token)], Array("MZ not an image".utf8), case: a)
        #expect(text.status == 400 && text.text.contains("只接受 JPEG 或 PNG"))
        #expect(try upload(&va, [("_csrf", "wrong")], jpeg, case: a).status == 403)
        #expect(try f.store.photos(ofCase: a).count == 2)
        // Shown on the case page and served to the township; another township gets nothing.
        #expect(try va.request("GET", "/cases/\(a)").text.contains("<img src=\"/photos/\(stored.id)\""))
        let image = try va.request("GET", "/photos/\(stored.id)")
        #expect(image.status == 200 && image.header("Content-Type") == "image/jpeg" && image.body == kept)
        var vb = f.client()
        try vb.signIn("vb", Self.password)
        #expect(try vb.request("GET", "/photos/\(stored.id)").status == 404)
        let vbToken = try #require(TestHTTP.hidden(try vb.request("GET", "/inbox").text, "_csrf"))
        #expect(try upload(&vb, [("_csrf", vbToken)], jpeg, case: a).status == 404)
        let actions = try f.store.auditLog(limit: 50).map(\.action)
        #expect(actions.contains("上传核实照片") && actions.contains("查看核实照片"))
    }

    static func contains(_ hay: [UInt8], _ needle: [UInt8]) -> Bool {
        guard needle.count <= hay.count else { return false }
        return (0...(hay.count - needle.count)).contains { hay[$0..<($0 + needle.count)].elementsEqual(needle) }
    }

    @Test func metricsCanRequireAToken() async throws {
        let store = try SQLiteStore(path: scratchDirectory("metrics").appendingPathComponent("h.sqlite").path)
        var config = WebConfiguration()
        config.metricsToken = "a-metrics-token-0123456789"
        let app = try await RunningApp(WebApp(store: store, config: config))
        defer { app.stop() }
        var c = TestHTTP(port: app.port)
        #expect(try c.request("GET", "/metrics").status == 401)
        #expect(try c.request("GET", "/metrics", headers: [("Authorization", "Bearer wrong")]).status == 401)
        let ok = try c.request("GET", "/metrics", headers: [("Authorization", "Bearer a-metrics-token-0123456789")])
        #expect(ok.status == 200 && ok.text.contains("hub_cases_awaiting_dispatch"))
    }

    @Test func everyResponseCarriesTheSecurityHeadersAndCrossSitePostsAreRefused() async throws {
        let f = try await Self.fixture()
        defer { f.app.stop() }
        var va = f.client()
        try va.signIn("va", Self.password)
        for path in ["/inbox", "/api/v1/cases", "/static/hub.css", "/static/hub.js", "/sw.js", "/ledger.csv", "/", "/no-such-page", "/metrics"] {
            let r = try va.request("GET", path)
            #expect(r.header("X-Content-Type-Options") == "nosniff" && r.header("X-Frame-Options") == "DENY"
                    && r.header("Content-Security-Policy")?.contains("frame-ancestors 'none'") == true, "\(path): \(r.status)")
        }
        // A page that does not exist is a Chinese page; under the API, JSON.
        let missing = try va.request("GET", "/no-such-page")
        #expect(missing.status == 404 && missing.text.contains("页面不存在") && missing.text.contains("<html lang=\"zh-CN\">"))
        #expect(try va.request("GET", "/api/v1/no-such").text.contains("\"error\""))
        // A form posted from another site is refused before anything runs, and logged.
        let token = try #require(TestHTTP.hidden(try va.request("GET", "/inbox").text, "_csrf"))
        let visit = [("_csrf", token), ("visited_on", CivilDate.today.description), ("visitors", "王五"), ("findings", "无异常"),
                     ("outcome", "no_risk"), ("reason", "收入稳定")]
        let port = f.app.port
        let forged = try va.request("POST", "/cases/\(f.caseA.id)/visit", body: TestHTTP.form(visit), headers: [("Origin", "http://evil.example")])
        #expect(forged.status == 403 && forged.text.contains("请求来源不符"))
        let sameSite = try va.request("POST", "/cases/\(f.caseA.id)/visit", body: TestHTTP.form(visit), headers: [("Sec-Fetch-Site", "cross-site")])
        #expect(sameSite.status == 403)
        #expect(try f.store.caseDetail(f.caseA.id)?.summary.status == .open)
        #expect(try f.store.auditLog(limit: 50).contains { $0.action == "拒绝跨站请求" })
        // The same form from the hub's own page goes through.
        let ok = try va.request("POST", "/cases/\(f.caseA.id)/visit", body: TestHTTP.form(visit), headers: [("Origin", "http://127.0.0.1:\(port)")])
        #expect(ok.status == 303, "\(ok.status) \(ok.text.prefix(300))")
        // A body over the limit gets a Chinese page, not a bare error.
        let huge = try va.request("POST", "/cases/\(f.caseA.id)/visit", body: String(repeating: "a", count: 70_000))
        #expect(huge.status == 413 && huge.text.contains("提交的内容太大"), "\(huge.status)")
    }

    @Test func pagesAreChineseAndMaskIDNumbers() async throws {
        let f = try await Self.fixture()
        defer { f.app.stop() }
        var admin = f.client()
        try admin.signIn("admin", Self.password)
        let page = try admin.request("GET", "/cases/\(f.caseA.id)")
        #expect(page.text.contains("<html lang=\"zh-CN\">") && page.text.contains("入户核实并销号"))
        let detail = try #require(try f.store.caseDetail(f.caseA.id))
        for m in detail.members {
            let id = m["id_number"]!.description
            #expect(!page.text.contains(id), "full ID number on the case page")
            #expect(page.text.contains(ResidentID.mask(id)))
        }
        // Not even inside a longer number: a disability certificate's number is the holder's ID number plus two digits.
        let admin2 = try f.store.query("SELECT case_id FROM alerts WHERE evidence LIKE '%certificate_no%' LIMIT 1")
        let certificateCase = try #require(admin2.first?["case_id"])
        let certificatePage = try admin.request("GET", "/cases/\(certificateCase)").text
        let certificateDetail = try #require(try f.store.caseDetail(Int64(certificateCase)!))
        let numbers = certificateDetail.alerts.flatMap(\.evidence).compactMap { $0.fields["certificate_no"] }
        #expect(!numbers.isEmpty)
        for n in numbers {
            #expect(!certificatePage.contains(String(n.prefix(18))), "an ID number inside a certificate number on the case page")
            #expect(certificatePage.contains(ResidentID.mask(n)))
        }
        let api = try admin.request("GET", "/api/v1/cases/\(certificateCase)").text
        #expect(!numbers.contains { api.contains(String($0.prefix(18))) }, "an ID number inside a certificate number in the API")
        #expect(page.header("Content-Security-Policy")?.contains("default-src 'self'") == true)
        // The quarantine page shows the refused rows without full ID numbers, even invalid ones.
        let run = try #require(try f.store.runs(source: "medical-claims", limit: 5).first { $0.status == .succeeded })
        let quarantined = try f.store.quarantine(runID: run.id).flatMap { $0.raw.compactMap { $0.last } }.filter { $0.count == 18 && $0.allSatisfy { $0.isNumber || $0 == "X" } }
        #expect(!quarantined.isEmpty)
        let qpage = try admin.request("GET", "/sources/medical-claims/quarantine").text
        #expect(quarantined.allSatisfy { !qpage.contains($0) && qpage.contains(ResidentID.mask($0)) })
        let dashboard = try admin.request("GET", "/dashboard").text
        #expect(dashboard.contains("<svg") && dashboard.contains("各乡镇案件"))
        let xlsx = try admin.request("GET", "/ledger.xlsx")
        #expect(xlsx.status == 200 && xlsx.body.starts(with: [0x50, 0x4B]))   // a ZIP (Office Open XML)
        var decoder = XLSXDecoder(options: XLSXOptions())
        let (rows, _) = try decodeAll(&decoder, xlsx.body)
        #expect(rows.count == (try f.store.caseCount(for: try f.store.users().first { $0.role == .admin }!)))
        #expect(rows.first?.columns.names.first == "案件号")
    }

    /// The inbox lists 50 cases a page, most urgent first, over every case the user may see;
    /// its counts come from SQL over the whole scope and follow every write to the store,
    /// from this process or another one on the same file.
    @Test func inboxPagesFiftyAtATimeAndFollowsTheStore() async throws {
        let f = try await Self.fixture()
        defer { f.app.stop() }
        let town = try #require(f.caseA.townshipCode)
        let period = f.caseA.period
        func alerts(_ n: Int, from: Int) -> [Alert] {
            (from..<(from + n)).map { i in
                Alert(rule: "paging_test", title: "分页测试", severity: .low, subjectKind: .person, subjectID: "P\(i)", householdID: "HH-PAGING-\(i)",
                      villageCode: f.caseA.villageCode, townshipCode: town, period: period, message: "测试 \(i)", evidence: [], ruleVersion: "t")
            }
        }
        try f.store.saveAlerts(alerts(120, from: 0))
        var va = f.client()
        try va.signIn("va", Self.password)
        let verifier = try #require(try f.store.users().first { $0.username == "va" })
        var all = CaseFilter(); all.limit = 100_000
        let expected = try f.store.cases(for: verifier, filter: all).map(\.id)
        #expect(expected.count > 120)
        // Walk the pages by their 下一页 links: every case once, in the store's order.
        var seen: [Int64] = []
        var path: String? = "/inbox"
        var pages = 0
        while let p = path {
            let text = try va.request("GET", p).text
            pages += 1
            let ids = text.components(separatedBy: "href=\"/cases/").dropFirst().compactMap { Int64($0.prefix { $0.isNumber }) }
            #expect(ids.count <= 50)
            seen += ids
            path = text.components(separatedBy: "<a class=\"button\" href=\"").first { $0.hasPrefix("/inbox?") && $0.contains("\">下一页</a>") }
                .map { String($0.prefix { $0 != "\"" }).replacingOccurrences(of: "&amp;", with: "&") }
        }
        #expect(seen == expected)
        #expect(pages == (expected.count + 49) / 50)
        // Page numbers from hand-edited URLs: nothing breaks, out of range is an empty page.
        for bad in ["0", "-3", "abc", "99999999999999999999", "9223372036854775807"] {
            let reply = try va.request("GET", "/inbox?page=\(bad)")
            #expect(reply.status == 200, "page=\(bad)")
            let shown = reply.text.components(separatedBy: "href=\"/cases/").count - 1
            #expect(shown == (["0", "-3", "abc", "99999999999999999999"].contains(bad) ? 50 : 0), "page=\(bad)")
        }
        func openCount() throws -> Int {
            let text = try va.request("GET", "/inbox").text
            let r = try #require(text.range(of: "未销号 <b>"))
            return Int(text[r.upperBound...].prefix { $0.isNumber })!
        }
        let before = try openCount()
        #expect(before == expected.count)
        // A write by this process's store…
        try f.store.saveAlerts(alerts(3, from: 1000))
        #expect(try openCount() == before + 3)
        // …and by another process on the same file (a second store stands in for a CLI pull).
        let other = try SQLiteStore(path: f.store.path)
        try other.saveAlerts(alerts(2, from: 2000))
        #expect(try openCount() == before + 5)
        #expect(HTML.escape("<a href=\"x\">&'村") == "&lt;a href=&quot;x&quot;&gt;&amp;&#39;村")
    }
}

/// The API against its own OpenAPI document, and its paging. In `WebTests`' serialized suite:
/// the test client blocks its thread while the server answers, and two such tests at once
/// would hold both of this machine's cooperative threads that the server needs.
extension WebTests {
    @Test func theOpenAPIDocumentDescribesExactlyTheRoutesAndEachAnswers() async throws {
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(OpenAPIDocument.json.utf8)) as? [String: Any])
        let paths = try #require(doc["paths"] as? [String: [String: Any]])
        let documented = Set(paths.flatMap { path, ops in ops.keys.map { "\($0.uppercased()) \(path)" } })
        let routed = Set(APIRoutes.endpoints.map { "\($0.method) \($0.path)" })
        #expect(documented == routed, "only documented: \(documented.subtracting(routed)); only routed: \(routed.subtracting(documented))")
        // Every endpoint is really there (signed in as the county, with a real case id), and a
        // path that is not documented is not served.
        let f = try await Self.fixture()
        defer { f.app.stop() }
        var admin = f.client()
        try admin.signIn("admin", Self.password)
        let token = try #require((try JSONSerialization.jsonObject(with: Data(try admin.request("GET", "/api/v1/me").body)) as? [String: Any])?["csrf_token"] as? String)
        for e in APIRoutes.endpoints {
            let path = "/api/v1" + e.path.replacingOccurrences(of: "{id}", with: String(f.caseA.id))
            let r = try admin.request(e.method, path, body: e.method == "POST" ? "{}" : nil, contentType: "application/json", headers: [("X-CSRF-Token", token)])
            #expect(r.status != 404 && r.header("Content-Type")?.hasPrefix("application/json") == true, "\(e.method) \(path): \(r.status)")
        }
        #expect(try admin.request("GET", "/api/v1/households").status == 404)
    }

    @Test func casesArePagedWithACursorAndATotal() async throws {
        let f = try await Self.fixture()
        defer { f.app.stop() }
        var an = f.client()
        try an.signIn("an", Self.password)
        func page(_ query: String) throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(try an.request("GET", "/api/v1/cases" + query).body)) as? [String: Any])
        }
        let first = try page("?limit=7")
        let total = try #require(first["total"] as? Int)
        let expected = try f.store.caseCount(for: try f.store.users().first { $0.username == "an" }!)
        #expect(total == expected && total > 7)
        var seen = ((first["cases"] as? [[String: Any]]) ?? []).compactMap { $0["id"] as? Int }
        var cursor = first["next_cursor"] as? String
        var pages = 1
        while let c = cursor {
            let next = try page("?limit=7&cursor=\(c)")
            seen += ((next["cases"] as? [[String: Any]]) ?? []).compactMap { $0["id"] as? Int }
            cursor = next["next_cursor"] as? String
            pages += 1
        }
        #expect(seen.count == total && Set(seen).count == total, "every case once")
        #expect(pages == (total + 6) / 7)
        #expect(try an.request("GET", "/api/v1/cases?limit=0").status == 400)
        #expect(try an.request("GET", "/api/v1/cases?limit=501").status == 400)
        #expect(try an.request("GET", "/api/v1/cases?cursor=bogus").status == 400)
    }
}

@Suite struct PhotoSanitizerTests {
    @Test func whatACameraAppendsAfterTheImageGoesUnlessKept() throws {
        let (jpeg, latitude) = WebTests.cameraJPEG()
        // A motion photo: a video with its own GPS after the end of the image, and an MPF index.
        let mpf: [UInt8] = [0xFF, 0xE2, 0x00, 0x08] + Array("MPF\0".utf8) + [0, 0]
        let trailer = Array("ftypmp4 ©xyz+34.5678+112.3456/".utf8)
        let phone = Array(jpeg.prefix(2)) + mpf + Array(jpeg.dropFirst(2)) + trailer
        let cleaned = try PhotoSanitizer.sanitize(phone, keepLocation: false)
        #expect(cleaned.hadLocation && cleaned.bytes.suffix(2) == [0xFF, 0xD9])
        #expect(!WebTests.contains(cleaned.bytes, trailer) && !WebTests.contains(cleaned.bytes, latitude) && !WebTests.contains(cleaned.bytes, Array("MPF".utf8)))
        #expect(try PhotoSanitizer.sanitize(phone, keepLocation: true).bytes == phone)
        // Truncated or foreign files are refused, never a crash.
        for bad in [Array(jpeg.prefix(7)), [0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF], Array("GIF89a".utf8), []] {
            #expect(throws: PhotoSanitizer.Refused.self) { _ = try PhotoSanitizer.sanitize(bad, keepLocation: false) }
        }
    }
}

extension WebTests {
    // Here, not in BackupTests: a live server answering this test's blocking requests must not
    // run beside another suite's (see WebTests).
    /// The first release with the inbox (commit 6f57241, schema v3): its cases, alerts, users and
    /// audit log come through the upgrade; its verifier signs in with the old password and sees
    /// the township's cases; the audit chain still verifies.
    @Test func aStoreWithCasesAndUsersFromAnEarlierReleaseKeepsThemAndItsUsersSignIn() async throws {
        let path = scratchDirectory("upgrade-v3").appendingPathComponent("hub.sqlite").path
        try FileManager.default.copyItem(atPath: repoRoot.appendingPathComponent("Tests/Fixtures/store-v3-6f57241.sqlite").path, toPath: path)
        let before = try SQLiteBackup.inspect(path).manifest
        #expect(before.schema.last == "v3-access-inbox")
        let store = try SQLiteStore(path: path)
        let after = try SQLiteBackup.inspect(path).manifest
        for table in ["cases", "alerts", "users", "audit_log", "runs", "quarantine", "rec_medical_claim"] {
            #expect(after.tables[table] == before.tables[table], "\(table)")
        }
        #expect(try store.verifyAuditLog() == nil)
        #expect(before.tables["cases"]! > 0 && before.tables["users"] == 2)
        var config = WebConfiguration()
        config.types = shippedTypes
        let app = try await RunningApp(WebApp(store: store, config: config))
        defer { app.stop() }
        var client = TestHTTP(port: app.port)
        #expect(try client.signIn("va", "correct-horse-1").status == 303)
        let inbox = try client.request("GET", "/inbox")
        #expect(inbox.status == 200)
        let own = try store.query("SELECT count(*) AS n FROM cases WHERE township_code = '411081001'").first!["n"]!
        #expect(Int(own)! > 0 && inbox.text.contains("未销号 <b>\(own)</b>"), "the verifier's township cases are listed")
        #expect(try store.verifyAuditLog() == nil, "the sign-in was appended to the old chain")
    }

}
