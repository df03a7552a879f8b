import Foundation
import Hub
import Hummingbird
import HTTPTypes
import NIOCore

/// The JSON API under `/api/v1`: the same data and actions as the pages, with the same scoping.
/// Sign in through `/login` (session cookie); send the session's CSRF token (from `/api/v1/me`)
/// in `X-CSRF-Token` with every POST.
struct APIRoutes: Sendable {
    let app: WebApp

    /// Every endpoint, as the OpenAPI document must describe it (a test holds the two together).
    static let endpoints: [(method: String, path: String)] = [
        ("GET", "/openapi.json"), ("GET", "/me"), ("GET", "/cases"), ("GET", "/cases/{id}"), ("POST", "/cases/{id}/visit"),
    ]

    func register(on router: Router<HubRequestContext>) {
        let api = RouteCollection(context: HubRequestContext.self)
        let cases = RouteCollection(context: HubRequestContext.self)
            .add(middleware: RolePolicy(app: app, style: .json, allowed: { $0.seesCases }))
        let visits = RouteCollection(context: HubRequestContext.self)
            .add(middleware: RolePolicy(app: app, style: .json, allowed: { $0.verifies }))
        defer {
            router.addRoutes(api, atPath: "api/v1")
            router.addRoutes(cases, atPath: "api/v1")
            router.addRoutes(visits, atPath: "api/v1")
        }
        api.get("openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.json)))
        }
        api.get("me") { _, context in
            guard let u = context.user else { return Self.json(["error": "未登录"], status: .unauthorized) }
            return Self.json(["username": u.username, "display_name": u.displayName, "role": u.role.rawValue, "townships": u.townships, "csrf_token": context.csrf ?? ""])
        }
        // Paged: `limit` (1–500, default 50) cases from `cursor` (the `next_cursor` of the page
        // before; none for the first page), with the total the filter selects.
        get(cases, "cases") { request, context, u in
            let today = CivilDate.today
            var f = app.filter(request)
            let q = request.uri.queryParameters
            if let l = q["limit"] {
                guard let n = Int(String(l)), (1...CaseFilter.maxLimit).contains(n) else {
                    return Self.json(["error": "limit 应为 1 到 \(CaseFilter.maxLimit) 的整数"], status: .badRequest)
                }
                f.limit = n
            }
            if let c = q["cursor"] {
                guard let offset = Self.offset(cursor: String(c)) else { return Self.json(["error": "cursor 无效，请使用上一页返回的 next_cursor"], status: .badRequest) }
                f.offset = offset
            }
            let cases = try app.store.cases(for: u, filter: f, today: today)
            let total = try app.store.caseCount(for: u, filter: f, today: today)
            try app.store.audit(u.username, "API 查询案件", target: "\(cases.count) 件", detail: WebApp.auditedQuery(request), address: context.address)
            var out: [String: Any] = ["cases": cases.map { Self.summary($0, today) }, "total": total]
            let next = f.offset + cases.count
            out["next_cursor"] = cases.count == f.limit && next < total ? Self.cursor(offset: next) : NSNull()
            return Self.json(out)
        }
        get(cases, "cases/:id") { request, context, u in
            guard let id = context.parameters.get("id").flatMap({ Int64($0) }), let d = try app.store.caseDetail(id) else {
                return Self.json(["error": "案件不存在"], status: .notFound)
            }
            guard u.sees(township: d.summary.townshipCode) else {
                try app.store.audit(u.username, "拒绝访问", target: "案件 #\(id)", detail: "API，不在本人负责的乡镇", address: context.address)
                return Self.json(["error": "案件不存在"], status: .notFound)
            }
            try app.store.audit(u.username, "查看案件", target: "案件 #\(id)", detail: "API", address: context.address)
            var out = Self.summary(d.summary, .today)
            out["members"] = d.members.map { m in
                ["name": m["name"]?.description ?? "", "relation": m["relation"]?.description ?? "", "id_number": ResidentID.mask(m["id_number"]?.description ?? "")]
            }
            out["alerts"] = d.alerts.map { a -> [String: Any] in
                ["rule": a.rule, "title": a.title, "severity": a.severity.rawValue, "message": ResidentID.maskEmbedded(a.message),
                 "evidence": a.evidence.map { e -> [String: Any] in
                     let t = app.config.types[e.type]
                     var fields: [String: String] = [:]
                     for (k, v) in e.fields { fields[k] = t?.field(k)?.type == .residentID ? ResidentID.mask(v) : ResidentID.maskEmbedded(v) }
                     return ["type": e.type, "source": e.source, "run": e.run, "row": e.row, "fields": fields]
                 }]
            }
            out["visits"] = d.visits.map { ["visited_on": $0.visitedOn, "visitors": $0.visitors, "findings": $0.findings, "outcome": $0.outcome.rawValue,
                                            "monitoring_type": $0.monitoringType as Any, "reason": $0.reason as Any] }
            return Self.json(out)
        }
        visits.post("cases/:id/visit") { request, context in
            guard let u = context.user else { return Self.json(["error": "未登录"], status: .unauthorized) }
            guard let token = request.headers[HTTPField.Name("X-CSRF-Token")!], let csrf = context.csrf, WebApp.constantTimeEqual(token, csrf) else {
                let store = app.store, address = context.address, path = request.uri.path
                try? await BlockingPool.run { try store.audit(u.username, "表单校验失败", target: path, detail: "API：X-CSRF-Token 缺失或不符", address: address) }
                return Self.json(["error": "缺少或错误的 X-CSRF-Token"], status: .forbidden)
            }
            let body: VisitForm
            do { body = try await request.decode(as: VisitForm.self, context: context) } catch {
                return Self.json(["error": "请求体应为 JSON 对象：visited_on、visitors、findings、outcome（\(VisitOutcome.allCases.map(\.rawValue).joined(separator: ", "))），可选 monitoring_type、reason"],
                                 status: .badRequest)
            }
            return try await BlockingPool.run { try visit(request, context, u, body) }
        }
    }

    /// An endpoint behind a `RolePolicy`: runs on `BlockingPool` with the signed-in user.
    func get(_ routes: RouteCollection<HubRequestContext>, _ path: RouterPath,
             _ handler: @Sendable @escaping (Request, HubRequestContext, User) throws -> Response) {
        routes.get(path) { request, context in
            guard let user = context.user else { return Self.json(["error": "未登录"], status: .unauthorized) }
            return try await BlockingPool.run { try handler(request, context, user) }
        }
    }

    /// Cursors are opaque to clients; today they carry the offset of the next page.
    static func cursor(offset: Int) -> String { "o" + String(offset, radix: 36) }
    static func offset(cursor: String) -> Int? {
        guard cursor.hasPrefix("o"), let n = Int(cursor.dropFirst(), radix: 36), n >= 0, n <= 1 << 40 else { return nil }
        return n
    }

    func visit(_ request: Request, _ context: HubRequestContext, _ u: User, _ body: VisitForm) throws -> Response {
        guard let id = context.parameters.get("id").flatMap({ Int64($0) }), let d = try app.store.caseDetail(id) else {
            return Self.json(["error": "案件不存在"], status: .notFound)
        }
        guard u.sees(township: d.summary.townshipCode) else {
            try app.store.audit(u.username, "拒绝访问", target: "案件 #\(id)", detail: "API 核实，不在本人负责的乡镇", address: context.address)
            return Self.json(["error": "案件不存在"], status: .notFound)
        }
        let allowed = VisitOutcome.choices(for: d.summary.subjectKind, household: d.summary.householdID != nil)
        guard let outcome = VisitOutcome(rawValue: body.outcome ?? ""), allowed.contains(outcome) else {
            return Self.json(["error": "该案件的 outcome 取值：\(allowed.map(\.rawValue).joined(separator: ", "))"], status: .badRequest)
        }
        let v = VisitRecord(visitedOn: body.visitedOn ?? "", visitors: body.visitors ?? "", findings: body.findings ?? "",
                            outcome: outcome, monitoringType: body.monitoringType.nonEmpty, reason: body.reason.nonEmpty)
        do { try app.store.recordVisit(caseID: id, by: u, visit: v, openedOn: CivilDate.parse(String(d.summary.openedAt.prefix(10)))) }
        catch let e as CaseChangeError { return Self.json(["error": e.description], status: .badRequest) }
        try app.store.audit(u.username, "入户核实销号", target: "案件 #\(id)", detail: "API：\(outcome.chinese)", address: context.address)
        return Self.json(["ok": true, "status": "closed"])
    }

    static func summary(_ c: CaseSummary, _ today: CivilDate) -> [String: Any] {
        ["id": c.id, "period": c.period, "household_id": c.householdID as Any, "subject_kind": c.subjectKind.rawValue,
         "subject_id": c.subjectKind == .person ? ResidentID.mask(c.subjectID) : c.subjectID, "township_code": c.townshipCode as Any,
         "township": c.township as Any, "village_code": c.villageCode as Any, "village": c.village as Any, "severity": c.severity.rawValue,
         "status": c.status.rawValue, "deadline": c.deadline, "overdue": c.isOverdue(today: today), "rules": c.rules, "outcome": c.outcome as Any,
         "subject_name": c.subjectName as Any]
    }

    static func json(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// The OpenAPI 3.1 description of `/api/v1`.
enum OpenAPIDocument {
    static let json = """
    {
      "openapi": "3.1.0",
      "info": { "title": "防返贫监测预警 hub API", "version": "1.0.0", "description": "与网页相同的数据和操作，按登录用户的角色和乡镇范围限定。先通过 /login 登录取得会话 Cookie；POST 请求须带 X-CSRF-Token（取自 /api/v1/me）。身份证号按前 6 后 4 位遮蔽。" },
      "servers": [ { "url": "/api/v1" } ],
      "components": {
        "securitySchemes": { "session": { "type": "apiKey", "in": "cookie", "name": "hub_session" } },
        "schemas": {
          "CaseSummary": { "type": "object", "properties": {
            "id": { "type": "integer" }, "period": { "type": "string", "example": "2026-10" }, "household_id": { "type": ["string", "null"] },
            "subject_kind": { "type": "string", "enum": ["household", "person", "village", "group"] }, "subject_id": { "type": "string" },
            "township_code": { "type": ["string", "null"] }, "township": { "type": ["string", "null"] }, "village_code": { "type": ["string", "null"] },
            "village": { "type": ["string", "null"] }, "severity": { "type": "string", "enum": ["high", "medium", "low"] },
            "status": { "type": "string", "enum": ["open", "closed"] }, "deadline": { "type": "string", "format": "date" },
            "overdue": { "type": "boolean" }, "rules": { "type": "array", "items": { "type": "string" } }, "outcome": { "type": ["string", "null"] },
            "subject_name": { "type": ["string", "null"], "description": "户主姓名，或名单外人员的姓名" } } },
          "Visit": { "type": "object", "required": ["visited_on", "visitors", "findings", "outcome"], "properties": {
            "visited_on": { "type": "string", "format": "date" }, "visitors": { "type": "string" }, "findings": { "type": "string" },
            "outcome": { "type": "string", "enum": ["monitor", "already_monitored", "no_risk", "data_wrong", "unverifiable", "confirmed"] },
            "monitoring_type": { "type": "string", "enum": ["脱贫不稳定户", "边缘易致贫户", "突发严重困难户"] }, "reason": { "type": "string" } } },
          "Error": { "type": "object", "properties": { "error": { "type": "string" } } }
        }
      },
      "security": [ { "session": [] } ],
      "paths": {
        "/openapi.json": { "get": { "summary": "本说明文档（OpenAPI 3.1）", "responses": { "200": { "description": "OpenAPI 文档" } } } },
        "/me": { "get": { "summary": "当前用户及 CSRF 令牌", "responses": { "200": { "description": "当前用户" }, "401": { "description": "未登录" } } } },
        "/cases": { "get": { "summary": "本人范围内的案件，未销号的在前，按期限排序；分页：limit 条一页，下一页用上一页返回的 next_cursor",
          "parameters": [
            { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 500, "default": 50 } },
            { "name": "cursor", "in": "query", "schema": { "type": "string" } },
            { "name": "status", "in": "query", "schema": { "type": "string", "enum": ["open", "closed"] } },
            { "name": "rule", "in": "query", "schema": { "type": "string" } },
            { "name": "village", "in": "query", "schema": { "type": "string" } },
            { "name": "severity", "in": "query", "schema": { "type": "string", "enum": ["high", "medium", "low"] } },
            { "name": "period", "in": "query", "schema": { "type": "string" } },
            { "name": "overdue", "in": "query", "schema": { "type": "string", "enum": ["1"] } },
            { "name": "q", "in": "query", "description": "姓名、户编号或身份证号（整号或后 4 位以上）", "schema": { "type": "string", "maxLength": 40 } } ],
          "responses": { "200": { "description": "案件列表", "content": { "application/json": { "schema": { "type": "object", "properties": { "cases": { "type": "array", "items": { "$ref": "#/components/schemas/CaseSummary" } }, "total": { "type": "integer" }, "next_cursor": { "type": ["string", "null"] } } } } } },
                         "400": { "description": "limit 或 cursor 无效" }, "401": { "description": "未登录" }, "403": { "description": "角色无权查看案件" } } } },
        "/cases/{id}": { "get": { "summary": "案件详情：户、成员（身份证号遮蔽）、预警及部门记录、核实记录",
          "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } } ],
          "responses": { "200": { "description": "案件" }, "404": { "description": "不存在，或不在本人负责的乡镇" } } } },
        "/cases/{id}/visit": { "post": { "summary": "记录入户核实并销号",
          "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } },
                          { "name": "X-CSRF-Token", "in": "header", "required": true, "schema": { "type": "string" } } ],
          "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Visit" } } } },
          "responses": { "200": { "description": "已销号" }, "400": { "description": "核实记录不完整", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                         "403": { "description": "角色无权或 CSRF 令牌错误" }, "404": { "description": "不存在，或不在本人负责的乡镇" } } } }
      }
    }
    """
}
