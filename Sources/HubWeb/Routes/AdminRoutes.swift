import Foundation
import Hub
import Hummingbird
import HTTPTypes

/// The administrator's pages: users and the audit log.
extension WebApp {
    func adminRoutes() -> RouteCollection<HubRequestContext> {
        let admins = routes(for: { $0 == .admin })
        get(admins, "admin/users") { request, context, user in try self.usersPage(request, context, user, error: nil) }
        post(admins, "admin/users", NewUserForm.self) { request, context, user, form in try self.addUser(request, context, user, form) }
        post(admins, "admin/users/:name", AccountForm.self) { request, context, user, form in try self.changeAccount(request, context, user, form) }
        get(admins, "admin/audit") { request, context, user in try self.auditPage(request, context, user) }
        return admins
    }

    func usersPage(_ request: Request, _ context: HubRequestContext, _ user: User, error: String?, notice: String? = nil,
                   status: HTTPResponse.Status = .ok) throws -> Response {
        let now = AccessPolicy.utcStamp(Date())
        let names = try store.regionNames()
        return page("users", "用户", context, [
            "error": opt(error), "notice": opt(notice),
            "users": try store.accounts().map { a -> [String: Any] in
                let locked = a.lockedUntil.map { $0 > now } ?? false
                return ["username": a.user.username, "displayName": a.user.displayName, "role": a.user.role.chinese,
                        "townships": a.user.townships.map { code in names[code].map { "\($0)（\(code)）" } ?? code }.joined(separator: "、"),
                        "state": !a.active ? "已停用" : locked ? "已锁定" : "正常", "active": a.active, "locked": locked, "self": a.user.username == user.username]
            },
            "roles": Role.allCases.map { ["value": $0.rawValue, "label": $0.chinese] },
            "townshipChoices": try areaChoices(names),
        ], status: status)
    }

    /// What the new-user form offers as area codes: each county of the roster (6 digits, named
    /// when the roster names it) and each township.
    func areaChoices(_ names: [String: String]) throws -> [[String: String]] {
        let townships = names.filter { $0.key.count == 9 }.sorted { $0.key < $1.key }
        var counties: [String: Int] = [:]
        for t in townships { counties[String(t.key.prefix(6)), default: 0] += 1 }
        return counties.sorted { $0.key < $1.key }.map { ["code": $0.key, "name": (names[$0.key] ?? "县") + "（全部 \($0.value) 个乡镇）"] }
            + townships.map { ["code": $0.key, "name": $0.value] }
    }

    /// 解锁、停用、启用、重置密码.
    func changeAccount(_ request: Request, _ context: HubRequestContext, _ admin: User, _ f: AccountForm) throws -> Response {
        let name = context.parameters.get("name") ?? ""
        let what: String
        do {
            switch f.action ?? "" {
            case "unlock": try store.changeAccount(username: name, .unlock); what = "解锁"
            case "disable":
                guard name != admin.username else { return try usersPage(request, context, admin, error: "不能停用自己的账户", status: .badRequest) }
                try store.changeAccount(username: name, .disable); what = "停用"
            case "enable": try store.changeAccount(username: name, .enable); what = "启用"
            case "reset": try store.resetPassword(username: name, password: f.password ?? ""); what = "重置密码"
            default: return try usersPage(request, context, admin, error: "未知的操作", status: .badRequest)
            }
        } catch let e as AccessError {
            return try usersPage(request, context, admin, error: e.description, status: .badRequest)
        }
        try store.audit(admin.username, what + "账户", target: name, detail: "", address: context.address)
        return try usersPage(request, context, admin, error: nil, notice: "已\(what)：\(name)")
    }

    func addUser(_ request: Request, _ context: HubRequestContext, _ admin: User, _ f: NewUserForm) throws -> Response {
        guard let role = Role(rawValue: f.role ?? "") else { return try usersPage(request, context, admin, error: "请选择角色", status: .badRequest) }
        do {
            let townships = (f.townships ?? "").split(whereSeparator: { $0 == "," || $0 == "，" || $0 == " " }).map(String.init)
            let known = Set(try store.regionNames().keys.filter { $0.count == 9 })
            let u = try store.addUser(username: f.username ?? "", displayName: f.displayName ?? "", role: role, townships: townships,
                                      password: f.password ?? "", knownTownships: known)
            try store.audit(admin.username, "新增用户", target: u.username, detail: "\(role.rawValue) \(townships.joined(separator: ","))", address: context.address)
        } catch let e as AccessError {
            return try usersPage(request, context, admin, error: e.description, status: .badRequest)
        }
        return Self.redirect("/admin/users")
    }

    /// The audit log, 100 entries a page, newest first, filtered by user, action and text.
    func auditPage(_ request: Request, _ context: HubRequestContext, _ user: User) throws -> Response {
        let q = request.uri.queryParameters
        var f = AuditFilter(limit: 100)
        f.username = q["user"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        f.action = q["action"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        f.text = q["text"].map { String($0.prefix(60)) }.flatMap { $0.isEmpty ? nil : $0 }
        f.before = q["before"].flatMap { Int64(String($0)) }
        let entries = try store.auditEntries(f)
        let broken = try store.verifyAuditLog()
        var next: Any = false
        if entries.count == f.limit, let last = entries.last {
            let kept = (request.uri.query ?? "").split(separator: "&").filter { !$0.hasPrefix("before=") }.map(String.init)
            next = "/admin/audit?" + (kept + ["before=\(last.id)"]).joined(separator: "&")
        }
        return page("audit", "审计日志", context, [
            "chain": broken.map { "第 \($0) 条起不连续（可能被改动）" } ?? "完整",
            "user": f.username ?? "", "action": f.action ?? "", "text": f.text ?? "", "next": next, "filtered": f.username != nil || f.action != nil || f.text != nil,
            "entries": entries.map { ["at": $0.at, "username": $0.username, "action": $0.action, "target": $0.target, "detail": $0.detail, "address": $0.address] },
        ])
    }
}
