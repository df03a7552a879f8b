import Foundation
import Hub
import Hummingbird
import HTTPTypes
import NIOCore

/// The ledger (台账): one line per case with its 销号 status, as .xlsx (Excel, WPS) or CSV with a
/// UTF-8 BOM. Scoped like the inbox; in the CSV a cell starting with = + - @ is neutralised so a
/// spreadsheet never runs department text as a formula (the workbook's text cells cannot be formulas).
extension WebApp {
    static let ledgerHeader = ["案件号", "期间", "乡镇", "行政村", "对象", "预警类型", "等级", "立案日期", "期限", "状态", "是否逾期",
                               "核实日期", "入户人员", "核实结果", "监测对象类别", "原因", "核实情况"]

    /// Cases read from the store per page of the export.
    static let ledgerPage = 500

    /// One page of the ledger: the cases `filter` selects at its offset (at most `ledgerPage`), as rows.
    func ledgerRows(_ user: User, _ filter: CaseFilter, today: CivilDate) throws -> [[String]] {
        var f = filter
        f.limit = Self.ledgerPage
        let cases = try store.cases(for: user, filter: f, today: today)
        let visits = try store.latestVisits(of: cases.map(\.id))
        return cases.map { c in
            let v = visits[c.id]
            return [String(c.id), c.period, c.township ?? c.townshipCode ?? "", c.village ?? c.villageCode ?? "", subjectText(c),
                    c.titles.joined(separator: "、"), c.severity.chinese, String(c.openedAt.prefix(10)),
                    c.deadline, c.status.chinese, c.isOverdue(today: today) ? "是" : "否",
                    v?.visitedOn ?? "", v?.visitors ?? "", v?.outcome.chinese ?? "", v?.monitoringType ?? "",
                    ResidentID.maskEmbedded(v?.reason ?? ""), ResidentID.maskEmbedded(v?.findings ?? "")]
        }
    }

    /// Text a spreadsheet will not run as a formula.
    public static func neutralise(_ s: String) -> String {
        guard let f = s.first, "=+-@\t\r".contains(f) else { return s }
        return "'" + s
    }

    /// The ledger download. CSV is streamed to the client page by page as the store is read;
    /// .xlsx (a ZIP, written whole before its directory) is built page by page in a temporary
    /// file and streamed from it. Neither goes through the page cache.
    func ledger(_ request: Request, _ context: HubRequestContext, xlsx: Bool) async throws -> Response {
        guard let user = context.user else { return Self.redirect("/login") }   // `RolePolicy` let only case roles through
        let f = filter(request)
        let total = try await BlockingPool.run { try store.caseCount(for: user, filter: f, today: .today) }
        try await BlockingPool.run {
            try store.audit(user.username, "导出台账", target: xlsx ? "xlsx" : "csv",
                            detail: "\(total) 行；筛选 \(Self.auditedQuery(request))", address: context.address)
        }
        let name = "台账-\(f.period ?? CivilDate.today.description)"
        let disposition = "attachment; filename=\"ledger.\(xlsx ? "xlsx" : "csv")\"; filename*=UTF-8''\(name.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "ledger").\(xlsx ? "xlsx" : "csv")"
        if xlsx {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-\(Token.make(bytes: 8)).xlsx")
            let size: Int
            do {
                size = try await BlockingPool.run {
                    let w = try XLSXWriter(url: url, sharedStrings: false)
                    try w.addSheet("台账") { row in
                        try row(Self.ledgerHeader.map { .text($0) })
                        var page = f
                        page.offset = 0
                        let today = CivilDate.today
                        while true {
                            let rows = try ledgerRows(user, page, today: today)
                            // Inline strings are never formulas in a workbook: text goes in as it is,
                            // and the case number as a number.
                            for r in rows { try row(r.enumerated().map { i, v in i == 0 ? .number(v) : .text(v) }) }
                            if rows.count < Self.ledgerPage { break }
                            page.offset += rows.count
                        }
                    }
                    try w.close()
                    return (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
                }
            } catch {
                try? FileManager.default.removeItem(at: url)
                throw error
            }
            let body = ResponseBody(contentLength: size) { writer in
                defer { try? FileManager.default.removeItem(at: url) }
                let handle = try FileHandle(forReadingFrom: url)
                defer { try? handle.close() }
                while let chunk = try handle.read(upToCount: 1 << 16), !chunk.isEmpty {
                    try await writer.write(ByteBuffer(bytes: chunk))
                }
                try await writer.finish(nil)
            }
            return Response(status: .ok, headers: [.contentType: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                                                   .contentDisposition: disposition, .cacheControl: "no-store"], body: body)
        }
        let app = self
        let body = ResponseBody { writer in
            try await writer.write(ByteBuffer(string: "\u{FEFF}" + Self.ledgerHeader.joined(separator: ",") + "\r\n"))
            var page = f
            page.offset = 0
            let today = CivilDate.today
            while true {
                let current = page
                let rows = try await BlockingPool.run { try app.ledgerRows(user, current, today: today) }
                var text = ""
                for r in rows { text += r.map { Self.csvCell(Self.neutralise($0)) }.joined(separator: ",") + "\r\n" }
                if !text.isEmpty { try await writer.write(ByteBuffer(string: text)) }
                if rows.count < Self.ledgerPage { break }
                page.offset += rows.count
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/csv; charset=utf-8", .contentDisposition: disposition, .cacheControl: "no-store"],
                        body: body)
    }

    static func csvCell(_ s: String) -> String {
        s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }
}
