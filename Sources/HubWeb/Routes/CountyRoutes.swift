import Foundation
import Hub
import Hummingbird

/// The county's overview: for the roles that see every township.
extension WebApp {
    func countyRoutes() -> RouteCollection<HubRequestContext> {
        let county = routes(for: { $0.seesAllTownships })
        get(county, "dashboard") { request, context, user in try self.dashboard(request, context, user) }
        return county
    }

    func dashboard(_ request: Request, _ context: HubRequestContext, _ user: User) throws -> Response {
        let d = try store.dashboard(today: .today)
        return page("dashboard", "全县概况", context, [
            "townships": d.byTownship.map { ["code": $0.code, "name": $0.name, "open": $0.open, "overdue": $0.overdue, "closed": $0.closed, "monitored": $0.monitored] as [String: Any] },
            "rules": d.byRule.map { r -> [String: Any] in
                let judged = r.confirmed + r.rejected
                return ["title": r.title, "cases": r.cases, "confirmed": r.confirmed, "rejected": r.rejected,
                        "precision": judged == 0 ? "—" : String(format: "%.0f%%", Double(r.confirmed) / Double(judged) * 100)]
            },
            "trend": TrendChart.svg(d.byPeriod),
        ])
    }

}
