import Foundation
import Hub
import Hummingbird
import HTTPTypes
import NIOCore

/// The ledger (台账): one line per case with its 销号 status, as .xlsx (Excel, WPS) or CSV with a
/// UTF-8 BOM. Scoped like the inbox; a cell starting with = + - @ is neutralised so a spreadsheet
/// never runs department text as a formula.
extension WebApp {
    static let ledgerHeader = ["案件号", "期间", "乡镇", "行政村", "对象", "预警类型", "等级", "立案日期", "期限", "状态", "是否逾期",
                               "核实日期", "入户人员", "核实结果", "监测对象类别", "原因", "核实情况"]

    func ledgerRows(_ user: User, _ filter: CaseFilter) throws -> [[String]] {
        var f = filter
        f.limit = 1_000_000
        let today = CivilDate.today
        let visits = try store.latestVisits()
        return try store.cases(for: user, filter: f, today: today).map { c in
            let v = visits[c.id]
            return [String(c.id), c.period, c.township ?? c.townshipCode ?? "", c.village ?? c.villageCode ?? "", subjectText(c),
                    c.titles.joined(separator: "、"), Rule.Severity(rawValue: c.severity)?.chinese ?? c.severity, String(c.openedAt.prefix(10)),
                    c.deadline, c.status == "open" ? "未销号" : "已销号", c.isOverdue(today: today) ? "是" : "否",
                    v?.visitedOn ?? "", v?.visitors ?? "", v?.outcome.chinese ?? "", v?.monitoringType ?? "", v?.reason ?? "", v?.findings ?? ""]
        }
    }

    /// Text a spreadsheet will not run as a formula.
    public static func neutralise(_ s: String) -> String {
        guard let f = s.first, "=+-@\t\r".contains(f) else { return s }
        return "'" + s
    }

    func ledger(_ request: Request, _ context: HubRequestContext, xlsx: Bool) throws -> Response {
        let user: User
        switch require(context, { $0.seesCases }) { case .success(let u): user = u; case .failure(let d): return d.response }
        let f = filter(request)
        let rows = try ledgerRows(user, f)
        try store.audit(user.username, "导出台账", target: xlsx ? "xlsx" : "csv",
                        detail: "\(rows.count) 行；筛选 \(request.uri.query ?? "无")", address: context.address)
        let name = "台账-\(f.period ?? CivilDate.today.description)"
        let disposition = "attachment; filename=\"ledger.\(xlsx ? "xlsx" : "csv")\"; filename*=UTF-8''\(name.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "ledger").\(xlsx ? "xlsx" : "csv")"
        if xlsx {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-\(Token.make(bytes: 8)).xlsx")
            defer { try? FileManager.default.removeItem(at: url) }
            let w = try XLSXWriter(url: url)
            try w.addSheet("台账") { row in
                try row(Self.ledgerHeader.map { .text($0) })
                for r in rows { try row(r.map { .text(Self.neutralise($0)) }) }
            }
            try w.close()
            let data = try Data(contentsOf: url)
            return Response(status: .ok, headers: [.contentType: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                                                   .contentDisposition: disposition, .cacheControl: "no-store"],
                            body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        var out = "\u{FEFF}" + Self.ledgerHeader.joined(separator: ",") + "\r\n"
        for r in rows { out += r.map { Self.csvCell(Self.neutralise($0)) }.joined(separator: ",") + "\r\n" }
        return Response(status: .ok, headers: [.contentType: "text/csv; charset=utf-8", .contentDisposition: disposition, .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(string: out)))
    }

    static func csvCell(_ s: String) -> String {
        s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }
}
