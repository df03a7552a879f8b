import Foundation

/// Who may do what. Verifiers are bound to townships and see nothing outside them.
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
    /// County roles see every township's cases.
    public var seesAllTownships: Bool { self == .admin || self == .analyst }
    public var seesCases: Bool { self != .operator }
    public var runsSources: Bool { self == .admin || self == .operator }
    /// Records home visits and closes cases.
    public var verifies: Bool { self == .admin || self == .verifier }
    /// The county reopens closed cases.
    public var reopens: Bool { self == .admin || self == .analyst }
}

public struct User: Sendable, Hashable {
    public var id: Int64
    public var username: String
    public var displayName: String
    public var role: Role
    /// 9-digit township codes (乡镇), for verifiers.
    public var townships: [String]

    /// Whether this user may see a case routed to `township`.
    public func sees(township: String?) -> Bool {
        guard role.seesCases else { return false }
        if role.seesAllTownships { return true }
        guard let township else { return false }
        return townships.contains(township)
    }
}

/// A home-visit outcome (入户核实结果); closing a case requires one.
public enum VisitOutcome: String, Sendable, CaseIterable, Codable {
    case monitor = "monitor"
    case alreadyMonitored = "already_monitored"
    case noRisk = "no_risk"
    case dataWrong = "data_wrong"
    case unverifiable = "unverifiable"

    public var chinese: String {
        switch self {
        case .monitor: return "纳入监测"
        case .alreadyMonitored: return "已是监测对象·更新帮扶"
        case .noRisk: return "无风险"
        case .dataWrong: return "数据有误"
        case .unverifiable: return "无法核实"
        }
    }
    /// Whether the outcome confirms the alert (for each rule's measured precision).
    public var confirms: Bool? {
        switch self {
        case .monitor, .alreadyMonitored: return true
        case .noRisk, .dataWrong: return false
        case .unverifiable: return nil
        }
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
    public func problems(today: CivilDate) -> [String] {
        var p: [String] = []
        if let (d, _) = try? DateFormat("yyyy-MM-dd").parse(visitedOn) {
            if d > today { p.append("核实日期不能晚于今天") }
        } else { p.append("核实日期应写作 yyyy-MM-dd") }
        if visitors.trimmingCharacters(in: .whitespaces).isEmpty { p.append("请填写入户人员") }
        if findings.trimmingCharacters(in: .whitespaces).isEmpty { p.append("请填写核实情况") }
        if outcome == .monitor && !Self.monitoringTypes.contains(monitoringType ?? "") { p.append("纳入监测须选择监测对象类别") }
        if (outcome == .noRisk || outcome == .dataWrong) && (reason ?? "").trimmingCharacters(in: .whitespaces).isEmpty {
            p.append("“\(outcome.chinese)”须说明原因")
        }
        return p
    }
}
