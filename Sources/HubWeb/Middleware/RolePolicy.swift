import Hub
import Hummingbird
import HTTPTypes

/// Who may use a group of routes: a signed-in user whose role passes `allowed`. Anyone else
/// is turned away before a handler runs — to the sign-in page (or 401 for the API) when not
/// signed in, with 403 and an audit entry when the role may not. Handlers behind it receive the
/// user (see `WebApp.get` / `WebApp.post`).
struct RolePolicy: RouterMiddleware {
    typealias Context = HubRequestContext
    /// How a refusal looks: a page, or JSON for the API.
    enum Style: Sendable { case page, json }

    let app: WebApp
    let style: Style
    let allowed: @Sendable (Role) -> Bool

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let user = context.user else {
            switch style {
            case .page: return WebApp.redirect(WebApp.loginPath(returningTo: request))
            case .json: return APIRoutes.json(["error": "未登录"], status: .unauthorized)
            }
        }
        guard allowed(user.role) else {
            let store = app.store, address = context.address, path = request.uri.path
            try? await BlockingPool.run {
                try store.audit(user.username, "拒绝访问", target: path, detail: "角色 \(user.role.rawValue)", address: address)
            }
            switch style {
            case .page: return app.message(context, "无权访问", "您的角色（\(user.role.chinese)）不能查看此页面。", status: .forbidden)
            case .json: return APIRoutes.json(["error": "无权访问"], status: .forbidden)
            }
        }
        return try await next(request, context)
    }
}

extension WebApp {
    /// Routes for the users whose role passes `allowed`.
    func routes(for allowed: @Sendable @escaping (Role) -> Bool, style: RolePolicy.Style = .page) -> RouteCollection<HubRequestContext> {
        RouteCollection(context: HubRequestContext.self).add(middleware: RolePolicy(app: self, style: style, allowed: allowed))
    }

    /// A page behind a `RolePolicy`: runs on `BlockingPool` with the signed-in user.
    func get(_ routes: RouteCollection<HubRequestContext>, _ path: RouterPath,
             _ handler: @Sendable @escaping (Request, HubRequestContext, User) throws -> Response) {
        routes.get(path) { request, context in
            guard let user = context.user else { return Self.redirect("/login") }
            return try await BlockingPool.run { try handler(request, context, user) }
        }
    }

    /// A form post behind a `RolePolicy`: the urlencoded body (at most 64 KB) is decoded into
    /// `Form` and its CSRF token checked on the event loop, then the handler runs on `BlockingPool`.
    func post<Form: CSRFProtectedForm>(_ routes: RouteCollection<HubRequestContext>, _ path: RouterPath, _ form: Form.Type,
                                       _ handler: @Sendable @escaping (Request, HubRequestContext, User, Form) throws -> Response) {
        routes.post(path) { request, context in
            guard let user = context.user else { return Self.redirect("/login") }
            guard let f = try await Self.decodeForm(Form.self, request),
                  let expected = context.csrf, let sent = f.csrf, Self.constantTimeEqual(expected, sent) else {
                let store = self.store, address = context.address, path = request.uri.path
                try? await BlockingPool.run { try store.audit(user.username, "表单校验失败", target: path, detail: "CSRF 令牌缺失或不符", address: address) }
                return self.csrfRejected(context)
            }
            return try await BlockingPool.run { try handler(request, context, user, f) }
        }
    }
}
