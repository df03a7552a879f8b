import Foundation

/// Who may do what. Verifiers are bound to townships (or whole counties) and see nothing
/// outside them; an analyst may be bound to counties (a county's analyst in a city's hub).
public enum Role: String, Sendable, CaseIterable, Codable {
    case admin, `operator`, analyst, verifier

    public var chinese: String {
        switch self {
        case .admin: return "系统管理员"
        case .operator: return "数据操作员"
        case .analyst: return "县级分析员"
        case .verifier: return "乡镇核查员"
        }
    }
    /// County roles see every township's cases (an analyst bound to an area: every township of it).
    public var seesAllTownships: Bool { self == .admin || self == .analyst }
    public var seesCases: Bool { self != .operator }
    public var runsSources: Bool { self == .admin || self == .operator }
    /// Records home visits and closes cases.
    public var verifies: Bool { self == .admin || self == .verifier }
    /// The county reopens closed cases.
    public var reopens: Bool { self == .admin || self == .analyst }
    /// The county routes cases that reached no township (分派).
    public var dispatches: Bool { self == .admin || self == .analyst }
}

public struct User: Sendable, Hashable {
    public var id: Int64
    public var username: String
    public var displayName: String
    public var role: Role
    /// The user's area (辖区): 9-digit township codes (乡镇) and 6-digit county codes (县、区、
    /// 县级市: every township whose code starts with it). A verifier sees the cases of their
    /// area; an analyst with an area sees only it (a county's analyst in a city's hub), without
    /// one the whole hub. Administrators always see everything.
    public var townships: [String]

    public init(id: Int64, username: String, displayName: String, role: Role, townships: [String]) {
        self.id = id; self.username = username; self.displayName = displayName; self.role = role; self.townships = townships
    }

    /// Whether this user may see a case routed to `township` (nil: routed to none, the
    /// dispatch queue, which only users without an area see).
    public func sees(township: String?) -> Bool {
        switch caseScope {
        case .nothing: return false
        case .everything: return true
        case .area(let area): return township.map(area.contains) ?? false
        }
    }

    /// Which cases the user sees.
    public var caseScope: CaseScope {
        guard role.seesCases else { return .nothing }
        if role == .admin || (role.seesAllTownships && townships.isEmpty) { return .everything }
        return townships.isEmpty ? .nothing : .area(Area(townships))
    }
}

/// Which cases a user sees: every one, none, or those routed into an area.
public enum CaseScope: Sendable, Equatable {
    case everything, nothing
    case area(Area)
}

/// Townships given one by one (9-digit codes) and whole counties (6-digit codes, the leading
/// digits of their townships' codes, GB/T 2260 and the statistical division codes).
public struct Area: Sendable, Equatable {
    public let townships: [String]
    public let counties: [String]

    public init(_ codes: [String]) {
        counties = codes.filter(Self.isCountyCode)
        townships = codes.filter { !Self.isCountyCode($0) }
    }

    public static func isCountyCode(_ code: String) -> Bool { code.utf8.count == 6 && code.utf8.allSatisfy { $0 >= 48 && $0 <= 57 } }

    public func contains(_ township: String) -> Bool {
        townships.contains(township) || counties.contains(String(township.prefix(6)))
    }

    /// The SQL condition that a township-code column (or expression) lies in the area; `bind`
    /// adds a text parameter and returns its placeholder (`?` on SQLite, `$n` on PostgreSQL).
    /// Townships compare by equality (the column's index serves them), counties by the code's
    /// first six characters; plain SQL both engines accept.
    public func condition(_ column: String, bind: (String) -> String) -> String {
        var parts: [String] = []
        if !townships.isEmpty { parts.append("\(column) IN (\(townships.map(bind).joined(separator: ", ")))") }
        if !counties.isEmpty { parts.append("substr(\(column), 1, 6) IN (\(counties.map(bind).joined(separator: ", ")))") }
        return "(" + parts.joined(separator: " OR ") + ")"
    }
}

/// A home-visit outcome (入户核实结果); closing a case requires one.
public enum VisitOutcome: String, Sendable, CaseIterable, Codable {
    case monitor = "monitor"
    case alreadyMonitored = "already_monitored"
    case noRisk = "no_risk"
    case dataWrong = "data_wrong"
    case unverifiable = "unverifiable"
    /// For a village or another non-household subject (a water supply, a PV station): the risk
    /// is real and has been dealt with or handed on.
    case confirmed = "confirmed"

    public var chinese: String {
        switch self {
        case .monitor: return "纳入监测"
        case .alreadyMonitored: return "已是监测对象·更新帮扶"
        case .noRisk: return "无风险"
        case .dataWrong: return "数据有误"
        case .unverifiable: return "无法核实"
        case .confirmed: return "风险属实·已处置"
        }
    }
    /// Whether the outcome confirms the alert (for each rule's measured precision).
    public var confirms: Bool? {
        switch self {
        case .monitor, .alreadyMonitored, .confirmed: return true
        case .noRisk, .dataWrong: return false
        case .unverifiable: return nil
        }
    }

    /// The outcomes that fit a case's subject: a household or person is visited at home and may
    /// be taken into monitoring; a village or a facility is checked on the spot.
    public static func choices(for kind: Rule.Subject, household: Bool) -> [VisitOutcome] {
        household || kind == .person ? [.monitor, .alreadyMonitored, .noRisk, .dataWrong, .unverifiable] : [.confirmed, .noRisk, .dataWrong, .unverifiable]
    }
}

public struct VisitRecord: Sendable, Codable {
    public var visitedOn: String
    public var visitors: String
    public var findings: String
    public var outcome: VisitOutcome
    /// For 纳入监测: the category (脱贫不稳定户 / 边缘易致贫户 / 突发严重困难户).
    public var monitoringType: String?
    /// For 无风险 and 数据有误: why.
    public var reason: String?
    public init(visitedOn: String, visitors: String, findings: String, outcome: VisitOutcome, monitoringType: String? = nil, reason: String? = nil) {
        self.visitedOn = visitedOn; self.visitors = visitors; self.findings = findings; self.outcome = outcome
        self.monitoringType = monitoringType; self.reason = reason
    }

    public static let monitoringTypes = ["脱贫不稳定户", "边缘易致贫户", "突发严重困难户"]

    /// What is missing or wrong, in Chinese; empty when the visit can close the case.
    public func problems(today: CivilDate, openedOn: CivilDate? = nil) -> [String] {
        fieldProblems(today: today, openedOn: openedOn).map(\.message)
    }

    /// The same, each with the form field it is about (`visited_on`, `visitors`, `findings`,
    /// `monitoring_type`, `reason`), so a form can show it there.
    public func fieldProblems(today: CivilDate, openedOn: CivilDate? = nil) -> [(field: String, message: String)] {
        var p: [(String, String)] = []
        if let (d, _) = try? DateFormat("yyyy-MM-dd").parse(visitedOn) {
            if d > today { p.append(("visited_on", "核实日期不能晚于今天")) }
            if let openedOn, d < openedOn { p.append(("visited_on", "核实日期不能早于立案日期 \(openedOn)")) }
        } else { p.append(("visited_on", "核实日期应写作 yyyy-MM-dd")) }
        if visitors.trimmingCharacters(in: .whitespaces).isEmpty { p.append(("visitors", "请填写入户人员")) }
        if findings.trimmingCharacters(in: .whitespaces).isEmpty { p.append(("findings", "请填写核实情况")) }
        if outcome == .monitor && !Self.monitoringTypes.contains(monitoringType ?? "") { p.append(("monitoring_type", "纳入监测须选择监测对象类别")) }
        if (outcome == .noRisk || outcome == .dataWrong) && (reason ?? "").trimmingCharacters(in: .whitespaces).isEmpty {
            p.append(("reason", "“\(outcome.chinese)”须说明原因"))
        }
        return p
    }
}

/// Why an account change was refused, in words for the administrator.
public struct AccessError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The rules for accounts and sign-in that every store and the web share.
public enum AccessPolicy {
    /// Failed passwords in a row that lock an account…
    public static let maxFailedLogins = 5
    /// …for this long.
    public static let lockMinutes = 15
    public static let sessionHours = 12

    /// Checks a new user before anything is hashed or stored.
    public static func check(_ user: NewUser, password: String) throws(AccessError) {
        guard user.username.range(of: "^[A-Za-z0-9_.\\-]{2,40}$", options: .regularExpression) != nil else {
            throw AccessError("用户名只能用字母、数字、_ . -，2 到 40 个字符")
        }
        try checkPassword(password, username: user.username)
        let codes = user.townships
        if let bad = codes.first(where: { !($0.utf8.count == 9 || $0.utf8.count == 6) || !$0.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) }) {
            throw AccessError("辖区代码 \(bad) 不对：乡镇是 9 位数字（如 411081101），县（市、区）是 6 位（如 411081）")
        }
        switch user.role {
        case .verifier where codes.isEmpty: throw AccessError("乡镇核查员须绑定一个或多个 9 位乡镇代码（如 411081101）或 6 位县代码")
        case .admin where !codes.isEmpty, .operator where !codes.isEmpty:
            throw AccessError("\(user.role.chinese)不按辖区划分，不要填辖区代码（分析员、核查员才有辖区）")
        default: break
        }
    }

    /// Passwords nobody should use: the usual keyboard runs and words, as Chinese users pick them.
    static let commonPasswords: Set<String> = [
        "1234567890", "0123456789", "12345678910", "123456789a", "a123456789", "1234567890a", "password12", "password123", "passw0rd123",
        "qwertyuiop", "1qaz2wsx3edc", "1q2w3e4r5t", "qwerty12345", "abc1234567", "abcd123456", "woaini1314", "woaini520", "iloveyou12",
        "admin12345", "admin123456", "root123456", "asdfghjkl1", "zxcvbnm123", "aa12345678", "1314520520", "5201314520", "11223344556",
        "abcdefghij", "0000000000", "1111111111", "88888888888", "66666666666",
    ]

    /// The password policy: at least 10 characters, not one character repeated, not a common
    /// password, not the user name.
    public static func checkPassword(_ password: String, username: String) throws(AccessError) {
        guard password.count >= 10 else { throw AccessError("密码至少 10 个字符") }
        guard Set(password).count > 2 else { throw AccessError("密码不能只由一两个字符重复组成") }
        let lower = password.lowercased()
        guard !commonPasswords.contains(lower), !lower.contains(username.lowercased()) || username.count < 3 else {
            throw AccessError("密码太常见或包含用户名，请换一个")
        }
    }

    /// `2026-11-23T21:00:00Z`: how session and lock times are stored (UTC, sorts like the time),
    /// without building a formatter per request (every page checks its session).
    public static func utcStamp(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var tm = tm()
        gmtime_r(&t, &tm)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday))T\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec))Z"
    }
}
