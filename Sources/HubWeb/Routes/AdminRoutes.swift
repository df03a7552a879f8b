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
        get(admins, "admin/audit") { request, context, user in try self.auditPage(request, context, user) }
        return admins
    }

    func usersPage(_ request: Request, _ context: HubRequestContext, _ user: User, error: String?, status: HTTPResponse.Status = .ok) throws -> Response {
        return page("users", "用户", context, [
            "error": opt(error),
            "users": try store.users().map { ["username": $0.username, "displayName": $0.displayName, "role": $0.role.chinese, "townships": $0.townships.joined(separator: "、")] },
            "roles": Role.allCases.map { ["value": $0.rawValue, "label": $0.chinese] },
        ], status: status)
    }

    func addUser(_ request: Request, _ context: HubRequestContext, _ admin: User, _ f: NewUserForm) throws -> Response {
        guard let role = Role(rawValue: f.role ?? "") else { return try usersPage(request, context, admin, error: "请选择角色", status: .badRequest) }
        do {
            let townships = (f.townships ?? "").split(whereSeparator: { $0 == "," || $0 == "，" || $0 == " " }).map(String.init)
            let u = try store.addUser(username: f.username ?? "", displayName: f.displayName ?? "", role: role, townships: townships, password: f.password ?? "")
            try store.audit(admin.username, "新增用户", target: u.username, detail: "\(role.rawValue) \(townships.joined(separator: ","))", address: context.address)
        } catch let e as AccessError {
            return try usersPage(request, context, admin, error: e.description, status: .badRequest)
        }
        return Self.redirect("/admin/users")
    }

    func auditPage(_ request: Request, _ context: HubRequestContext, _ user: User) throws -> Response {
        let broken = try store.verifyAuditLog()
        return page("audit", "审计日志", context, [
            "chain": broken.map { "第 \($0) 条起不连续（可能被改动）" } ?? "完整",
            "entries": try store.auditLog().map { ["at": $0.at, "username": $0.username, "action": $0.action, "target": $0.target, "detail": $0.detail, "address": $0.address] },
        ])
    }
}
