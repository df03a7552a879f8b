import Foundation
import Hub

extension CountyFeeds {
    /// Every feed of the month in its department's shape, with the planted bad rows, and the
    /// ground truth updated with what a clean pull must store.
    public func render() throws -> [FeedFile] {
        if county.config.style == .yanling {
            truth.feeds = [:]
            truth.badRows = []
            return try renderYanling()
        }
        return try Self.render([self])
    }

    /// The feeds of several counties of one city as the city's departments export them: one
    /// roster workbook, one 民政 API, one 残联 export… each holding every county's rows, each
    /// county's bad rows planted in its own part (its `truth` counts what its part holds).
    static func render(_ parts: [CountyFeeds]) throws -> [FeedFile] {
        for p in parts {
            p.truth.feeds = [:]
            p.truth.badRows = []
        }
        return [try roster(parts), minzhengFeed(parts), canlianFeed(parts), yibaoFeed(parts), shuiliFeed(parts), dianliFeed(parts), guangfuFeed(parts)]
    }

    /// What the departments' exports call the area they cover: the county, or the city.
    static func areaName(_ parts: [CountyFeeds]) -> String {
        parts.count == 1 ? parts[0].county.config.countyName : "模拟市（\(parts.count) 个县、市、区）"
    }

    func bad(_ source: String, _ marker: String, _ reason: String) {
        truth.badRows.append(GroundTruth.BadRow(source: source, marker: marker, reason: reason))
        truth.feeds[source, default: GroundTruth.Feed()].bad += 1
    }

    func wrongCheck(_ id: String) -> String {
        let last = id.last!
        let wrong: Character = last == "1" ? "2" : "1"
        return String(id.dropLast()) + String(wrong)
    }

    func excelSerial(_ d: CivilDate) -> String { String(d.daysSinceEpoch - CivilDate(year: 1899, month: 12, day: 30)!.daysSinceEpoch) }

    // MARK: roster (全国防返贫监测信息系统 花名册, .xlsx)

    static func roster(_ parts: [CountyFeeds]) throws -> FeedFile {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sim-roster-\(UUID().uuidString).xlsx")
        defer { try? FileManager.default.removeItem(at: url) }
        let w = try XLSXWriter(url: url)
        let P = parts[0].P
        let headers = ["县（市、区）", "乡（镇）", "行政村", "行政村代码", "户编号", "户类型", "监测对象类别", "监测状态", "纳入监测时间", "风险消除时间",
                       "主要风险", "家庭人口数", "劳动力人数", "收入年度", "家庭人均纯收入（元）", "信息更新日期", "姓名", "证件号码", "与户主关系", "健康状况", "残疾情况"]
        try w.addSheet("花名册") { row in
            try row([.text("全国防返贫监测信息系统 \(areaName(parts)) 脱贫户和监测对象花名册（\(P.year)年\(P.month)月）")])
            try row(headers.map { .text($0) })
            for part in parts { try part.rosterRows(row) }
        }
        try w.addSheet("帮扶措施") { row in
            try row([.text("户编号"), .text("措施类别"), .text("措施内容"), .text("开始日期")])
            for part in parts { try part.measureRows(row) }
        }
        try w.close()
        return FeedFile(source: "roster", path: "/fanpin/export/roster.xlsx", fileName: "roster-\(P).xlsx",
                        contentType: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", bytes: Array(try Data(contentsOf: url)))
    }

    /// This county's rows of the roster sheet, two of them planted bad.
    func rosterRows(_ row: ([XLSXWriter.Cell]) throws -> Void) throws {
        var rows = 0, persons = 0
        var badIDDone = false, badDateDone = false
        for h in county.households {
            let v = county.villages[h.village]
            for (k, p) in h.members.enumerated() {
                rows += 1
                var id = p.id
                var monitored: XLSXWriter.Cell = h.monitoredOn.map { .number(excelSerial($0)) } ?? .empty
                // Two planted bad rows, each on a non-head member of an ordinary household.
                if k == 1, h.planted == nil, !badIDDone, h.status == "未纳入", !truth.planted.values.joined().contains(h.id) {
                    id = wrongCheck(p.id); badIDDone = true
                    bad("roster", id, "校验位错误")
                } else if k == 1, !badDateDone, h.status == "监测中", !truth.planted.values.joined().contains(h.id), !truth.negatives.values.joined().contains(h.id) {
                    monitored = .text("\(P.year)-02-30"); badDateDone = true
                    bad("roster", p.id, "日期 \(P.year)-02-30 无效")
                    // The row's household part is refused; its person part stands on its own.
                    persons += 1
                } else {
                    persons += 1
                }
                try row([.text(county.config.countyName), .text(county.townships[v.township].name), .text(v.name), .text(v.code), .text(h.id),
                         .text(h.category), h.type.isEmpty ? .empty : .text(h.type), .text(h.status == "未纳入" ? "" : h.status), monitored,
                         h.eliminatedOn.map { .number(excelSerial($0)) } ?? .empty, h.reason.isEmpty ? .empty : .text(h.reason),
                         .number(String(h.members.count)), .number(String(h.labour)), .number(String(P.year - 1)), .number(String(h.income)),
                         .number(excelSerial(h.updatedOn)), .text(p.name), .text(id), .text(p.relation), .text(p.health), .text(p.disability)])
            }
        }
        truth.feeds["roster", default: GroundTruth.Feed()].rows = rows
        truth.feeds["roster"]!.records = ["household": county.households.count, "person": persons]
    }

    /// This county's rows of the measures sheet.
    func measureRows(_ row: ([XLSXWriter.Cell]) throws -> Void) throws {
        var measures = 0
        for h in county.households {
            for (m, d) in h.measures {
                measures += 1
                try row([.text(h.id), .text(m), .text(m + "（系统录入）"), .text(d.description)])
            }
        }
        truth.feeds["roster-measures"] = GroundTruth.Feed(rows: measures, bad: 0, records: ["assistance_measure": measures])
    }

    // MARK: 民政 (paged JSON API, pinyin abbreviations)

    static func minzhengFeed(_ parts: [CountyFeeds]) -> FeedFile {
        let rows = parts.flatMap { $0.minzhengRecords() }
        return FeedFile(source: "minzheng", path: "/minzheng/api/jiuzhu", fileName: "minzheng-\(parts[0].P).json", contentType: "application/json",
                        bytes: Array(Self.minzhengPage(rows, pageNo: 1, total: rows.count).utf8), pages: rows)
    }

    func minzhengRecords() -> [[String: String]] {
        var records = minzheng
        // Bad rows are planted on background records only, never on a planted case.
        let spare = records.indices.filter { records[$0]["_outsider"] == "1" }
        if spare.count >= 2 {
            let a = spare[0], b = spare[1]
            records[a]["sfzh"] = wrongCheck(records[a]["_id"]!)
            bad("minzheng", records[a]["sfzh"]!, "校验位错误")
            records[b]["ksrq"] = "\(P.year)1345"
            bad("minzheng", records[b]["sfzh"]!, "无效")
        }
        let rows = records.map { r -> [String: String] in r.filter { !$0.key.hasPrefix("_") } }
        truth.feeds["minzheng", default: GroundTruth.Feed()].rows = rows.count
        truth.feeds["minzheng"]!.records = ["assistance_enrollment": rows.count - truth.feeds["minzheng"]!.bad]
        return rows
    }

    /// One page of the 民政 API: `{"code":0,"msg":"成功","data":{"total":N,"pageNo":n,"list":[…]}}`; amounts as numbers.
    public static func minzhengPage(_ rows: some Collection<[String: String]>, pageNo: Int, total: Int) -> String {
        let list = rows.map { r -> String in
            let fields = r.keys.sorted().map { k -> String in
                let v = r[k]!
                if (k == "bzrs" || k == "ybzj"), !v.isEmpty, Double(v) != nil { return "\"\(k)\":\(v)" }
                return "\"\(k)\":\"\(jsonEscape(v))\""
            }
            return "{" + fields.joined(separator: ",") + "}"
        }
        return "{\"code\":0,\"msg\":\"成功\",\"data\":{\"total\":\(total),\"pageNo\":\(pageNo),\"list\":[" + list.joined(separator: ",") + "]}}"
    }

    static func jsonEscape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    // MARK: 残联 (namespaced XML)

    static func canlianFeed(_ parts: [CountyFeeds]) -> FeedFile {
        let area = parts.count == 1 ? parts[0].county.config.countyCode : String(parts[0].county.config.countyCode.prefix(4)) + "00"
        var x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<dpf:CertificateExport xmlns:dpf=\"urn:cdpf:certificate:2\" county=\"\(area)\" month=\"\(parts[0].P)\">\n"
        for part in parts { x += part.canlianElements() }
        x += "</dpf:CertificateExport>\n"
        return FeedFile(source: "canlian", path: "/canlian/export.xml", fileName: "canlian-\(parts[0].P).xml", contentType: "application/xml", bytes: Array(x.utf8))
    }

    func canlianElements() -> String {
        var records = certs
        let spare = records.indices.filter { records[$0]["_outsider"] == "1" }
        if spare.count >= 2 {
            let a = spare[0], b = spare[1]
            records[a]["IdNo"] = wrongCheck(records[a]["IdNo"]!)
            bad("canlian", records[a]["CertNo"]!, "校验位错误")
            records[b]["CertNo"] = String(records[b]["CertNo"]!.dropLast()) + "9"
            bad("canlian", records[b]["CertNo"]!, "代码表")
        }
        var x = ""
        for r in records {
            x += "  <dpf:Certificate>"
            for k in ["CertNo", "IdNo", "Name", "IssueDate", "Status", "LivingSubsidy", "CareSubsidy"] {
                x += "<dpf:\(k)>\(XLSXWriter.escape(r[k] ?? ""))</dpf:\(k)>"
            }
            x += "</dpf:Certificate>\n"
        }
        truth.feeds["canlian", default: GroundTruth.Feed()].rows = records.count
        truth.feeds["canlian"]!.records = ["disability_certificate": records.count - truth.feeds["canlian"]!.bad]
        return x
    }

    // MARK: 医保 (GB18030 CSV, national field names, a title row), a file drop

    static let yibaoColumns = ["setl_id", "psn_no", "psn_name", "certno", "med_type", "fixmedins_name", "begndate", "enddate", "setl_time",
                               "medfee_sumamt", "inscp_scp_amt", "hifp_pay", "hifmi_pay", "maf_pay", "fund_pay_sumamt", "psn_part_amt", "insuplc_admdvs"]

    static func yibaoFeed(_ parts: [CountyFeeds]) -> FeedFile {
        let P = parts[0].P, cols = yibaoColumns
        let records = parts.flatMap { $0.yibaoRecords() }
        var text = "\(areaName(parts))医疗保障局 \(P.year)年\(P.month)月 医疗费用基数5万元以上结算明细" + String(repeating: ",", count: cols.count - 1) + "\r\n"
        text += cols.joined(separator: ",") + "\r\n"
        for r in records { text += cols.map { r[$0] ?? "" }.joined(separator: ",") + "\r\n" }
        let sum = records.reduce(0.0) { $0 + (Double($1["medfee_sumamt"] ?? "") ?? 0) }
        text += "合计" + String(repeating: ",", count: 9) + String(format: "%.2f", sum) + String(repeating: ",", count: cols.count - 10) + "\r\n"
        let gb = Array(text.data(using: String.Encoding(rawValue: 0x8000_0632))!)
        return FeedFile(source: "medical-claims", path: nil, fileName: "yibao_setl_\(P.compact).csv", contentType: "text/csv; charset=gb18030", bytes: gb)
    }

    func yibaoRecords() -> [[String: String]] {
        var records = claims
        if records.count >= 6 {
            records[1]["certno"] = wrongCheck(records[1]["certno"]!); bad("medical-claims", records[1]["setl_id"]!, "校验位错误")
            records[3]["setl_time"] = "\(P)-32 10:00:00"; bad("medical-claims", records[3]["setl_id"]!, "无效")
            records[5]["certno"] = ""; bad("medical-claims", records[5]["setl_id"]!, "缺少必填字段")
        }
        truth.feeds["medical-claims", default: GroundTruth.Feed()].rows = records.count
        truth.feeds["medical-claims"]!.records = ["medical_claim": records.count - truth.feeds["medical-claims"]!.bad]
        return records
    }

    // MARK: 水利 (NDJSON outage events, year to date)

    static func shuiliFeed(_ parts: [CountyFeeds]) -> FeedFile {
        let lines = parts.flatMap { $0.shuiliLines() }
        return FeedFile(source: "water-outages", path: "/shuili/outages.ndjson", fileName: "shuili-\(parts[0].P).ndjson", contentType: "application/x-ndjson",
                        bytes: Array((lines.joined(separator: "\n") + "\n").utf8))
    }

    func shuiliLines() -> [String] {
        var lines = outages.map { r in "{" + ["event_id", "village_code", "start", "end", "cause"].map { "\"\($0)\":\"\(r[$0]!)\"" }.joined(separator: ",") + "}" }
        lines.append("{\"event_id\":\"SW-BROKEN\",\"village_code\":\"\(county.villages[0].code)\",\"start\":\"\(P)-0")
        bad("water-outages", "SW-BROKEN", "JSON")
        lines.append("{\"event_id\":\"SW-BADDATE\",\"village_code\":\"\(county.villages[0].code)\",\"start\":\"\(P.year)-02-30 08:00:00\",\"end\":\"\",\"cause\":\"管网维修\"}")
        bad("water-outages", "SW-BADDATE", "无效")
        truth.feeds["water-outages", default: GroundTruth.Feed()].rows = lines.count
        truth.feeds["water-outages"]!.records = ["water_supply_event": outages.count]
        return lines
    }

    // MARK: 电力 (monthly kWh per meter, six months)

    static func dianliFeed(_ parts: [CountyFeeds]) -> FeedFile {
        var text = "\u{FEFF}用电户号,户主证件号码,电费年月,月用电量(千瓦时),欠费金额(元)\n"
        for part in parts { part.dianliRows(&text) }
        return FeedFile(source: "power-usage", path: "/dianli/usage.csv", fileName: "dianli-\(parts[0].P).csv", contentType: "text/csv; charset=utf-8", bytes: Array(text.utf8))
    }

    func dianliRows(_ text: inout String) {
        var rows = 0
        let involved = Set(truth.planted.values.joined()).union(truth.negatives.values.joined())
        let spare = county.households.indices.filter { county.households[$0].planted == nil && !involved.contains(county.households[$0].id) }
        let badKwh = spare.first ?? 3, badHolder = spare.dropFirst().first ?? 5
        for (i, h) in county.households.enumerated() {
            for (k, kwh) in h.kwh.enumerated() {
                rows += 1
                var kwhText = String(format: "%.1f", kwh)
                var holder = h.members[0].id
                let month = P.adding(months: k - 5).compact
                if i == badKwh && k == 5 { kwhText = "--"; bad("power-usage", h.meter, "数值") }
                if i == badHolder && k == 5 { holder = wrongCheck(holder); bad("power-usage", holder, "校验位错误") }
                text += "\(h.meter),\(holder),\(month),\(kwhText),\(rng.chance(0.05) ? String(format: "%.2f", rng.double(10...200)) : "0")\n"
            }
        }
        truth.feeds["power-usage", default: GroundTruth.Feed()].rows = rows
        truth.feeds["power-usage"]!.records = ["power_reading": rows - truth.feeds["power-usage"]!.bad]
    }

    // MARK: 光伏 (weekly station generation, JSON)

    static func guangfuFeed(_ parts: [CountyFeeds]) -> FeedFile {
        let list = parts.flatMap { $0.guangfuRecords() }
        let text = "{\"code\":\"0000\",\"message\":\"ok\",\"rows\":[\n" + list.joined(separator: ",\n") + "\n]}"
        return FeedFile(source: "pv-stations", path: "/guangfu/weekly.json", fileName: "guangfu-\(parts[0].P).json", contentType: "application/json", bytes: Array(text.utf8))
    }

    func guangfuRecords() -> [String] {
        var records = stations
        if let k = records.indices.last {
            let village = county.config.countyCode + "999999"
            records.append(records[k].merging(["station_code": "", "village": village]) { $1 })
            bad("pv-stations", village, "缺少必填字段")
        }
        let list = records.map { r in "{" + ["station_code", "village", "week_start", "gen_kwh", "cap_kw", "pr"].map { k -> String in
            k == "gen_kwh" || k == "cap_kw" || k == "pr" ? "\"\(k)\":\(r[k]!)" : "\"\(k)\":\"\(r[k]!)\"" }.joined(separator: ",") + "}" }
        truth.feeds["pv-stations", default: GroundTruth.Feed()].rows = records.count
        truth.feeds["pv-stations"]!.records = ["pv_station_reading": records.count - truth.feeds["pv-stations"]!.bad]
        return list
    }
}
