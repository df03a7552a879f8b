import Foundation

/// Where a case stands: open until a home visit closes it (销号); the county may reopen it.
public enum CaseStatus: String, Sendable, Hashable, CaseIterable, Codable {
    case open, closed

    public var chinese: String { self == .open ? "未销号" : "已销号" }
    /// Where the county lists cases routed to no township.
    public static let awaitingDispatchName = "（待县级分派）"
}

/// Why a change to a case was refused, in words for the person who tried it.
public struct CaseChangeError: Error, Sendable, Equatable, CustomStringConvertible {
    enum Code: Sendable, Equatable { case notFound, notOpen, notClosed, notAllowed, invalid }
    let code: Code
    public let description: String

    public static let notFound = CaseChangeError(code: .notFound, description: "案件不存在")
    public static let notOpen = CaseChangeError(code: .notOpen, description: "案件已销号；如需再次核实，请县里先重新打开")
    public static let notClosed = CaseChangeError(code: .notClosed, description: "案件尚未销号")
    public static func notAllowed(_ why: String) -> CaseChangeError { CaseChangeError(code: .notAllowed, description: why) }
    public static func invalid(_ problems: [String]) -> CaseChangeError { CaseChangeError(code: .invalid, description: problems.joined(separator: "；")) }

    public var isNotFound: Bool { code == .notFound }
}

extension CaseStore {
    /// Records a home visit and closes the case (销号) with its outcome. The visit is checked
    /// first (`VisitRecord.problems`); a case that is not open refuses it.
    public func recordVisit(caseID: Int64, by user: User, visit: VisitRecord, today: CivilDate = .today, openedOn: CivilDate? = nil) throws {
        guard user.role.verifies else { throw CaseChangeError.notAllowed("只有乡镇核查员可以记录入户核实") }
        let problems = visit.problems(today: today, openedOn: openedOn)
        if !problems.isEmpty { throw CaseChangeError.invalid(problems) }
        var detail = "入户核实（\(visit.visitedOn)，\(visit.visitors)）：\(visit.outcome.chinese)"
        if let t = visit.monitoringType, visit.outcome == .monitor { detail += "（\(t)）" }
        if let r = visit.reason, !r.isEmpty { detail += "，原因：\(r)" }
        try closeCase(caseID, visit: visit, event: CaseEvent(username: user.username, action: "销号", detail: detail))
    }

    /// The county reopens a closed case, with a reason and a new deadline.
    public func reopen(caseID: Int64, by user: User, reason: String, deadlineDays: Int = 15, today: CivilDate = .today) throws {
        guard user.role.reopens else { throw CaseChangeError.notAllowed("只有县级用户可以重新打开案件") }
        guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else { throw CaseChangeError.invalid(["请说明重新打开的原因"]) }
        try reopenCase(caseID, deadline: today.adding(days: deadlineDays), event: CaseEvent(username: user.username, action: "重新打开", detail: reason))
    }
}

extension CaseStore {
    /// The county dispatches cases to a township (分派): each must be open; the case history
    /// records who sent it where and from where. Returns the ids it could not move, with why.
    @discardableResult
    public func dispatch(caseIDs: [Int64], to township: String, townshipName: String, by user: User) throws -> [(id: Int64, error: CaseChangeError)] {
        guard user.role.dispatches else { throw CaseChangeError.notAllowed("只有县级用户可以分派案件") }
        guard township.count == 9, township.allSatisfy(\.isNumber) else { throw CaseChangeError.invalid(["请选择要分派到的乡镇"]) }
        var failed: [(Int64, CaseChangeError)] = []
        for id in caseIDs {
            do {
                try assignCase(id, township: township, event: CaseEvent(username: user.username, action: "分派", detail: "分派至\(townshipName)（\(township)）"))
            } catch let e as CaseChangeError {
                failed.append((id, e))
            }
        }
        return failed
    }
}

extension Rule.Severity {
    /// Higher is more severe: a case takes its most severe alert's severity.
    public var rank: Int {
        switch self {
        case .high: return 3
        case .medium: return 2
        case .low: return 1
        }
    }
}
