import Foundation
import Hub
import Hummingbird
import HTTPTypes
import Logging

/// The outermost layer of every request: cross-site form posts are refused before anything
/// else runs, every response (pages, API, exports, static files, redirects, errors) carries the
/// security headers, and errors become friendly Chinese pages (JSON under `/api/`) instead of
/// the framework's bare text.
struct SecurityMiddleware: RouterMiddleware {
    typealias Context = HubRequestContext
    let app: WebApp

    static let headers: [(HTTPField.Name, String)] = [
        (HTTPField.Name("X-Content-Type-Options")!, "nosniff"),
        (HTTPField.Name("X-Frame-Options")!, "DENY"),
        (HTTPField.Name("Referrer-Policy")!, "same-origin"),
        (HTTPField.Name("Content-Security-Policy")!, "default-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"),
    ]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if app.config.trustedProxies.contains(context.peerAddress), let forwarded = request.headers[HTTPField.Name("X-Forwarded-For")!] {
            // The proxy appends the address it saw: the rightmost one that is not itself a proxy.
            let hops = forwarded.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            context.forwardedAddress = hops.last { !app.config.trustedProxies.contains($0) } ?? hops.first
        }
        var response: Response
        if request.method == .post, let why = Self.crossSite(request) {
            let store = app.store, address = context.address, path = request.uri.path
            try? await BlockingPool.run { try store.audit("", "拒绝跨站请求", target: path, detail: why, address: address) }
            response = failure(request, context, .forbidden, "请求来源不符", "该表单不是从本系统的页面提交的，已拒绝。")
        } else {
            do {
                response = try await next(request, context)
            } catch let e as any HTTPResponseError {
                switch e.status {
                case .notFound: response = failure(request, context, .notFound, "页面不存在", "找不到这个地址。")
                case .contentTooLarge: response = failure(request, context, .contentTooLarge, "提交的内容太大", "请缩短后再提交。")
                case .methodNotAllowed: response = failure(request, context, .methodNotAllowed, "不支持的操作", "该地址不支持这种请求。")
                default: response = failure(request, context, e.status, "请求有误", "请返回上一页重试。")
                }
            } catch {
                context.logger.error("处理请求出错", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
                response = failure(request, context, .internalServerError, "系统出错", "处理请求时出错，已记录。请稍后重试；如一直出错，请联系县里的系统管理员。")
            }
        }
        for (name, value) in Self.headers where response.headers[name] == nil { response.headers[name] = value }
        return response
    }

    /// Why a POST comes from another site, or nil: the browser's `Sec-Fetch-Site` when it sends
    /// one (every current browser does), else the `Origin` against the `Host` it was sent to (an
    /// opaque `null` origin proves nothing either way). Requests without either (scripts, curl)
    /// still need their CSRF token.
    static func crossSite(_ request: Request) -> String? {
        if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!] {
            return site == "same-origin" || site == "none" ? nil : "Sec-Fetch-Site: \(site)"
        }
        guard let origin = request.headers[.origin], origin != "null" else { return nil }
        let host = request.head.authority ?? ""
        let originHost = origin.split(separator: "/", omittingEmptySubsequences: true).dropFirst().first.map(String.init) ?? ""
        return originHost != host ? "Origin \(origin) 与 Host \(host) 不符" : nil
    }

    func failure(_ request: Request, _ context: Context, _ status: HTTPResponse.Status, _ heading: String, _ text: String) -> Response {
        if request.uri.path.hasPrefix("/api/") { return APIRoutes.json(["error": heading], status: status) }
        return app.message(context, heading, text, status: status)
    }
}
