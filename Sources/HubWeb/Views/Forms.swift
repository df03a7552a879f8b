import Hub
import Hummingbird

/// A form that carries the session's CSRF token in `_csrf`.
protocol CSRFProtectedForm: Decodable, Sendable {
    var csrf: String? { get }
}

/// Sign-out: the token only.
struct CSRFForm: CSRFProtectedForm {
    var csrf: String?
    enum CodingKeys: String, CodingKey { case csrf = "_csrf" }
}

/// The sign-in form; its token is the double-submit cookie's (there is no session yet).
struct LoginForm: Decodable, Sendable {
    var csrf: String?
    var username: String?
    var password: String?
    /// The page asked for before signing in, to return to.
    var next: String?
    enum CodingKeys: String, CodingKey { case csrf = "_csrf", username, password, next }
}

/// 入户核实: what the verifier found, and the outcome that closes the case. Also the JSON body
/// of the API's `POST /cases/{id}/visit` (whose CSRF token comes in a header instead).
struct VisitForm: CSRFProtectedForm {
    var csrf: String?
    var visitedOn: String?
    var visitors: String?
    var findings: String?
    var outcome: String?
    var monitoringType: String?
    var reason: String?
    enum CodingKeys: String, CodingKey {
        case csrf = "_csrf", visitedOn = "visited_on", visitors, findings, outcome, monitoringType = "monitoring_type", reason
    }
}

struct ReopenForm: CSRFProtectedForm {
    var csrf: String?
    var reason: String?
    enum CodingKeys: String, CodingKey { case csrf = "_csrf", reason }
}

/// The county's dispatch: the chosen cases (`ids[]`) and the township they go to; `back=case`
/// returns to the case page.
struct DispatchForm: CSRFProtectedForm {
    var csrf: String?
    var ids: [String]?
    var township: String?
    var back: String?
    enum CodingKeys: String, CodingKey { case csrf = "_csrf", ids, township, back }
}

/// An administrator's change to an account: `unlock`, `disable`, `enable` or `reset` (with a new password).
struct AccountForm: CSRFProtectedForm {
    var csrf: String?
    var action: String?
    var password: String?
    enum CodingKeys: String, CodingKey { case csrf = "_csrf", action, password }
}

struct NewUserForm: CSRFProtectedForm {
    var csrf: String?
    var username: String?
    var displayName: String?
    var role: String?
    var townships: String?
    var password: String?
    enum CodingKeys: String, CodingKey { case csrf = "_csrf", username, displayName = "display_name", role, townships, password }
}

extension WebApp {
    /// Decodes a urlencoded form of at most 64 KB; nil when it is not one.
    static func decodeForm<Form: Decodable>(_ type: Form.Type, _ request: Request) async throws -> Form? {
        var req = request
        let body = try await req.collectBody(upTo: 64 << 10)
        return try? URLEncodedFormDecoder().decode(Form.self, from: String(buffer: body))
    }
}

extension Optional where Wrapped == String {
    /// The text, or nil when empty.
    var nonEmpty: String? { self.flatMap { $0.isEmpty ? nil : $0 } }
}
