import Foundation
import Hub
import Hummingbird
import HTTPTypes

/// Signing in and out. The sign-in form is guarded by a double-submit cookie (there is no
/// session yet); signing out needs the session's CSRF token like every other form.
extension WebApp {
    func signInRoutes() -> RouteCollection<HubRequestContext> {
        let open = RouteCollection(context: HubRequestContext.self)
        open.get("login") { request, context in try await BlockingPool.run { try self.loginPage(request, context, error: nil, username: "") } }
        open.post("login") { request, context in
            let form = try await Self.decodeForm(LoginForm.self, request)
            if throttle.isBlocked(context.address) {
                // Too many failures from this address: refused before any password is checked.
                return try await BlockingPool.run {
                    try self.store.audit(form?.username ?? "", "登录被拒（地址尝试过多）", target: "", address: context.address)
                    return try self.loginPage(request, context, error: "这个地址登录失败次数过多，请 \(LoginThrottle.minutes) 分钟后再试", username: "", status: .tooManyRequests)
                }
            }
            // bcrypt runs here: on the blocking pool, never on the event loop.
            return try await BlockingPool.run { try self.login(request, context, form) }
        }
        return open
    }

    func signOutRoutes() -> RouteCollection<HubRequestContext> {
        let signedIn = routes(for: { _ in true })
        post(signedIn, "logout", CSRFForm.self) { request, context, user, form in try self.logout(request, context, user, form) }
        return signedIn
    }

    func loginPage(_ request: Request, _ context: HubRequestContext, error: String?, username: String, status: HTTPResponse.Status = .ok) throws -> Response {
        // Double-submit token: the login form carries the same random value as a short-lived cookie.
        let token = request.cookies["hub_login"]?.value ?? Token.make(bytes: 16)
        let next = Self.safeNext(request.uri.queryParameters["next"].map(String.init)) ?? ""
        var r = page("login", "登录", context, ["loginCsrf": token, "error": opt(error), "username": username, "next": next], status: status)
        r.setCookie(Cookie(name: "hub_login", value: token, maxAge: 1800, path: "/login", secure: config.secureCookies, httpOnly: true, sameSite: .strict))
        return r
    }

    func login(_ request: Request, _ context: HubRequestContext, _ f: LoginForm?) throws -> Response {
        guard let f, let cookie = request.cookies["hub_login"]?.value, let sent = f.csrf, Self.constantTimeEqual(cookie, sent) else {
            return try loginPage(request, context, error: "表单已失效，请重新登录", username: "", status: .forbidden)
        }
        let username = f.username ?? ""
        switch try store.signIn(username: username, password: f.password ?? "") {
        case .success(let user, let token, _):
            try store.audit(user.username, "登录", target: "", address: context.address)
            var r = Self.redirect(Self.safeNext(f.next) ?? "/")
            r.setCookie(sessionCookie(token, maxAge: AccessPolicy.sessionHours * 3600))
            return r
        case .wrongPassword:
            throttle.failed(context.address)
            try store.audit(username, "登录失败", target: "", address: context.address)
            return try loginPage(request, context, error: Self.signInRefused, username: username, status: .unauthorized)
        case .locked:
            // The same answer as a wrong password: nobody learns which accounts exist or are locked.
            throttle.failed(context.address)
            try store.audit(username, "登录被拒（已锁定）", target: "", address: context.address)
            return try loginPage(request, context, error: Self.signInRefused, username: username, status: .unauthorized)
        }
    }

    static let signInRefused = "用户名或密码错误。连续 \(AccessPolicy.maxFailedLogins) 次错误后，账户须等 \(AccessPolicy.lockMinutes) 分钟才能再登录。"

    /// Where to go back to after signing in: a path on this site only (never `//host` or a URL).
    static func safeNext(_ next: String?) -> String? {
        // Browsers drop tabs and newlines from a Location and read "/\" as "//": any control
        // character, or a second character that is a slash of either kind, is refused.
        guard let n = next, n.hasPrefix("/"), n.count <= 512, !n.hasPrefix("/login"),
              !n.unicodeScalars.contains(where: { $0.value < 0x21 || $0.value == 0x7F }),
              n.unicodeScalars.dropFirst().first.map({ $0 != "/" && $0 != "\\" }) ?? true else { return nil }
        return n
    }

    /// The sign-in page, remembering the page that was asked for.
    static func loginPath(returningTo request: Request) -> String {
        let asked = request.uri.path + (request.uri.query.map { "?" + $0 } ?? "")
        guard request.method == .get, let next = safeNext(asked), next != "/" else { return "/login" }
        return "/login?next=" + (next.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
    }

    func logout(_ request: Request, _ context: HubRequestContext, _ user: User, _ form: CSRFForm) throws -> Response {
        if let t = context.sessionToken { try store.signOut(token: t) }
        try store.audit(user.username, "退出", target: "", address: context.address)
        var r = Self.redirect("/login")
        r.setCookie(sessionCookie("", maxAge: 0))
        return r
    }

}
