import Foundation
import Hub

/// The second simulated county's departments (鄢陵县, `CountyStyle.yanling`): the same kinds of
/// data as the first county, delivered in shapes of their own, for the example mappings in
/// `Mappings/examples/yanling/`.
extension CountyFeeds {
    /// The key the simulated 残联 API expects in `X-Api-Key`.
    public static let yanlingCanlianKey = "sim-canlian-key"

    func renderYanling() throws -> [FeedFile] {
        truth.blind = [
            "roster_stale": "花名册没有“信息更新日期”列",
            "pv_low": "本县没有光伏电站数据",
        ]
        for family in truth.blind!.keys { truth.planted[family] = nil; truth.negatives[family] = nil }
        return [ylRoster(), ylMeasures(), ylMinzheng(), ylCanlian(), ylYibao(), ylShuili(), ylDianli()]
    }

    func slashDate(_ d: CivilDate) -> String { "\(d.year)/\(d.month)/\(d.day)" }

    func csvField(_ s: String) -> String {
        s.contains(",") || s.contains("\"") || s.contains("\n") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    func gb18030(_ text: String) -> [UInt8] { Array(text.data(using: String.Encoding(rawValue: 0x8000_0632))!) }

    /// Households no planted case or look-alike uses, for bad rows.
    var spareHouseholds: [Int] {
        let involved = Set(truth.planted.values.joined()).union(truth.negatives.values.joined())
        return county.households.indices.filter {
            county.households[$0].planted == nil && !involved.contains(county.households[$0].id) && county.households[$0].members.count >= 2
        }
    }

    // MARK: roster (GB18030 CSV, no monitoring-status or update-date column)

    func ylRoster() -> FeedFile {
        let headers = ["乡镇名称", "村名称", "村级区划代码", "户码", "户属性", "监测对象类型", "纳入监测日期", "风险消除日期", "主要风险", "家庭人口数",
                       "劳动力数", "年人均纯收入(元)", "收入年份", "成员姓名", "公民身份号码", "与户主关系", "健康状况", "残疾状况"]
        var text = headers.joined(separator: ",") + "\r\n"
        var rows = 0, persons = 0
        let spare = spareHouseholds
        // A wrong check digit on one member; one member of another household listed again under
        // a third household (户表不一致): the second listing contradicts the first.
        let badID = spare.first, twice = spare.dropFirst().first, host = spare.dropFirst(2).first
        func line(_ h: SimHousehold, _ p: SimPerson, id: String, relation: String) -> String {
            let v = county.villages[h.village]
            rows += 1
            return [county.townships[v.township].name, v.name, v.code, h.id, h.category, h.type, h.monitoredOn.map(slashDate) ?? "",
                    h.eliminatedOn.map(slashDate) ?? "", h.reason, String(h.members.count), String(h.labour), String(h.income), String(P.year - 1),
                    p.name, id, relation, p.health, p.disability].map(csvField).joined(separator: ",") + "\r\n"
        }
        for (i, h) in county.households.enumerated() {
            for (k, p) in h.members.enumerated() {
                var id = p.id
                if i == badID && k == 1 {
                    id = wrongCheck(p.id)
                    bad("roster", id, "校验位错误")
                } else {
                    persons += 1
                }
                text += line(h, p, id: id, relation: p.relation)
            }
            if i == host, let twice {
                let p = county.households[twice].members[1]
                text += line(h, p, id: p.id, relation: "之子")
                bad("roster", p.id, "键相同")
            }
        }
        truth.feeds["roster"] = GroundTruth.Feed(rows: rows, bad: truth.feeds["roster"]?.bad ?? 0,
                                                 records: ["household": county.households.count, "person": persons])
        return FeedFile(source: "roster", path: "/xczx/jcdx.csv", fileName: "jcdx-\(P.compact).csv", contentType: "text/csv; charset=gb18030",
                        bytes: gb18030(text))
    }

    // MARK: measures (UTF-8 CSV, several measures in one cell)

    func ylMeasures() -> FeedFile {
        var text = "\u{FEFF}户码,帮扶措施,落实时间\n"
        var rows = 0, measures = 0
        for h in county.households where !h.measures.isEmpty {
            rows += 1
            measures += h.measures.count
            let first = h.measures.map(\.1).min()!
            text += "\(h.id),\(csvField(h.measures.map(\.0).joined(separator: "、"))),\(first.year)年\(first.month)月\(first.day)日\n"
        }
        truth.feeds["roster-measures"] = GroundTruth.Feed(rows: rows, bad: 0, records: ["assistance_measure": measures])
        return FeedFile(source: "roster-measures", path: "/xczx/bfcs.csv", fileName: "bfcs-\(P.compact).csv", contentType: "text/csv; charset=utf-8",
                        bytes: Array(text.utf8))
    }

    // MARK: 民政 (XML, no status column: it follows from the dates)

    func ylMinzheng() -> FeedFile {
        var records = minzheng
        let spare = records.indices.filter { records[$0]["_outsider"] == "1" }
        if let a = spare.first {
            records[a]["sfzh"] = wrongCheck(records[a]["_id"]!)
            bad("minzheng", records[a]["sfzh"]!, "校验位错误")
        }
        func dashed(_ ymd: String) -> String {
            ymd.count == 8 ? "\(ymd.prefix(4))-\(ymd.dropFirst(4).prefix(2))-\(ymd.suffix(2))" : ymd
        }
        var x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DATA county=\"\(county.config.countyCode)\">\n"
        for r in records {
            let cells: [(String, String)] = [("XM", r["xm"]!), ("SFZH", r["sfzh"]!), ("JZLB", r["jzlb"]!), ("DBLB", r["dblb"] ?? ""),
                                             ("BZRS", r["bzrs"]!), ("YBZJ", r["ybzj"]!), ("KSRQ", dashed(r["ksrq"]!)), ("TZRQ", dashed(r["tzrq"] ?? "")),
                                             ("XZQH", r["xzqh"]!)]
            x += "  <ROW>" + cells.map { $0.1.isEmpty ? "<\($0.0)/>" : "<\($0.0)>\(XLSXWriter.escape($0.1))</\($0.0)>" }.joined() + "</ROW>\n"
        }
        x += "</DATA>\n"
        truth.feeds["minzheng"] = GroundTruth.Feed(rows: records.count, bad: truth.feeds["minzheng"]?.bad ?? 0,
                                                   records: ["assistance_enrollment": records.count - (truth.feeds["minzheng"]?.bad ?? 0)])
        return FeedFile(source: "minzheng", path: "/mz/jzdx.xml", fileName: "jzdx-\(P.compact).xml", contentType: "application/xml", bytes: Array(x.utf8))
    }

    // MARK: 残联 (JSON behind an API key, no region, issue times with UTC offsets)

    func ylCanlian() -> FeedFile {
        var records = certs
        let spare = records.indices.filter { records[$0]["_outsider"] == "1" }
        if spare.count >= 2 {
            let a = spare[0], b = spare[1]
            records[a]["IdNo"] = wrongCheck(records[a]["IdNo"]!)
            bad("canlian", records[a]["CertNo"]!, "校验位错误")
            records[b]["_level"] = "6"
            bad("canlian", records[b]["CertNo"]!, "代码表")
        }
        let categoryName = Dictionary(uniqueKeysWithValues: Self.categories.map { ($0.value, $0.key) })
        var list: [String] = []
        // One certificate of this month is issued on its first day and written in UTC: the
        // evening before, in the previous month, unless the offset is applied.
        let firstOfMonth = records.firstIndex { $0["IssueDate"]! >= P.firstDay.description && $0["_outsider"] == nil }
        for (n, r) in records.enumerated() {
            let cert = r["CertNo"]!
            let ymd = r["IssueDate"]!.split(separator: "-").compactMap { Int($0) }
            var issued = CivilDate(year: ymd[0], month: ymd[1], day: ymd[2])!
            if n == firstOfMonth { issued = P.firstDay }
            // The same day in county time, written two ways: +08:00, or UTC the evening before.
            let when = n % 2 == 0 && n != firstOfMonth ? "\(issued)T10:00:00+08:00" : "\(issued.adding(days: -1))T16:30:00Z"
            let cells: [(String, String)] = [("zh", cert), ("sfzh", r["IdNo"]!), ("xm", r["Name"]!), ("cjlb", categoryName[String(cert.dropLast().suffix(1))]!),
                                             ("cjdj", r["_level"] ?? String(cert.suffix(1))), ("fzsj", when), ("zt", r["Status"]!),
                                             ("shbt", r["LivingSubsidy"] == "是" ? "1" : "0"), ("hlbt", r["CareSubsidy"] == "是" ? "1" : "0")]
            list.append("{" + cells.map { "\"\($0.0)\":\"\(Self.jsonEscape($0.1))\"" }.joined(separator: ",") + "}")
        }
        let text = "{\"success\":true,\"total\":\(records.count),\"data\":[\n" + list.joined(separator: ",\n") + "\n]}"
        truth.feeds["canlian"] = GroundTruth.Feed(rows: records.count, bad: truth.feeds["canlian"]?.bad ?? 0,
                                                  records: ["disability_certificate": records.count - (truth.feeds["canlian"]?.bad ?? 0)])
        return FeedFile(source: "canlian", path: "/cl/certs", fileName: "canlian-\(P.compact).json", contentType: "application/json", bytes: Array(text.utf8),
                        requiredHeader: ("x-api-key", Self.yanlingCanlianKey))
    }

    // MARK: 医保 (CSV over HTTP, no region, settlement times with UTC offsets)

    func ylYibao() -> FeedFile {
        var records = claims
        if records.count >= 4 {
            records[1]["certno"] = wrongCheck(records[1]["certno"]!); bad("medical-claims", records[1]["setl_id"]!, "校验位错误")
            records[3]["_when"] = "\(P)-32T10:00:00+08:00"; bad("medical-claims", records[3]["setl_id"]!, "无效")
        }
        let medType = ["21": "住院", "14": "门诊慢特病"]
        var text = "\u{FEFF}结算流水号,姓名,证件号码,医疗类别,医疗机构名称,入院日期,出院日期,结算时间,总费用,统筹基金支付,大病保险支付,医疗救助支付,个人自付\n"
        for (n, r) in records.enumerated() {
            let local = r["setl_time"]!   // yyyy-MM-dd HH:mm:ss in county time
            let day = String(local.prefix(10)), hour = Int(local.dropFirst(11).prefix(2))!, rest = String(local.suffix(6))
            let when = r["_when"] ?? (n % 3 == 0 ? "\(day)T\(String(format: "%02d", hour - 8))\(rest)Z" : "\(day)T\(local.suffix(8))+08:00")
            func d(_ ymd: String) -> String { "\(ymd.prefix(4))-\(ymd.dropFirst(4).prefix(2))-\(ymd.suffix(2))" }
            text += [r["setl_id"]!, r["psn_name"]!, r["certno"]!, medType[r["med_type"]!]!, r["fixmedins_name"]!, d(r["begndate"]!), d(r["enddate"]!), when,
                     r["medfee_sumamt"]!, r["hifp_pay"]!, r["hifmi_pay"]!, r["maf_pay"]!, r["psn_part_amt"]!].map(csvField).joined(separator: ",") + "\n"
        }
        truth.feeds["medical-claims"] = GroundTruth.Feed(rows: records.count, bad: truth.feeds["medical-claims"]?.bad ?? 0,
                                                         records: ["medical_claim": records.count - (truth.feeds["medical-claims"]?.bad ?? 0)])
        return FeedFile(source: "medical-claims", path: "/yb/jsmx.csv", fileName: "jsmx-\(P.compact).csv", contentType: "text/csv; charset=utf-8",
                        bytes: Array(text.utf8))
    }

    // MARK: 水利 (CSV, an outage still going on)

    func ylShuili() -> FeedFile {
        var events = outages
        // The first planted village's water has been off since two months before the period
        // and is not back: one event, no end.
        if let village = truth.planted["water_outage"]?.first {
            events.removeAll { $0["village_code"] == village }
            let start = county.monthsBefore(2, day: 3)
            events.append(["event_id": "SW\(P.year)OPEN", "village_code": village, "start": "\(start) 08:00:00", "end": "", "cause": "水源不足"])
        }
        func slashed(_ t: String) -> String { t.isEmpty ? "" : t.prefix(16).replacingOccurrences(of: "-", with: "/") }
        var text = "编号,村级代码,村名,停水时间,恢复时间,原因\n"
        let names = Dictionary(uniqueKeysWithValues: county.villages.map { ($0.code, $0.name) })
        for e in events {
            text += [e["event_id"]!, e["village_code"]!, names[e["village_code"]!] ?? "", slashed(e["start"]!), slashed(e["end"]!), e["cause"]!]
                .map(csvField).joined(separator: ",") + "\n"
        }
        text += "SW-BADDATE,\(county.villages[0].code),\(county.villages[0].name),\(P.year)/02/30 08:00,,管网维修\n"
        bad("water-outages", "SW-BADDATE", "无效")
        text += "SW-NOVILLAGE,,,\(P)-01 08:00,,管网维修\n".replacingOccurrences(of: "-01 08", with: "/01 08").replacingOccurrences(of: "\(P.year)-", with: "\(P.year)/")
        bad("water-outages", "SW-NOVILLAGE", "缺少必填字段")
        truth.feeds["water-outages"] = GroundTruth.Feed(rows: events.count + 2, bad: 2, records: ["water_supply_event": events.count])
        return FeedFile(source: "water-outages", path: "/sl/tingshui.csv", fileName: "tingshui-\(P.compact).csv", contentType: "text/csv; charset=utf-8",
                        bytes: Array(text.utf8))
    }

    // MARK: 电力 (a wide table: one column per month)

    func ylDianli() -> FeedFile {
        let months = (0..<6).map { P.adding(months: $0 - 5) }
        var text = "户号,户主身份证号," + months.map { "\($0.year)年\(String(format: "%02d", $0.month))月用电量" }.joined(separator: ",") + "\n"
        let badKwh = spareHouseholds.first ?? 3
        var cells = 0
        for (i, h) in county.households.enumerated() {
            let kwh = h.kwh.enumerated().map { k, v -> String in
                if i == badKwh && k == 5 { return "--" }
                return String(format: "%.1f", v)
            }
            cells += kwh.count
            text += "\(h.meter),\(h.members[0].id)," + kwh.joined(separator: ",") + "\n"
        }
        bad("power-usage", county.households[badKwh].meter, "数值")
        truth.feeds["power-usage"] = GroundTruth.Feed(rows: county.households.count, bad: 1, records: ["power_reading": cells - 1])
        return FeedFile(source: "power-usage", path: "/dl/yongdian.csv", fileName: "yongdian-\(P.compact).csv", contentType: "text/csv; charset=utf-8",
                        bytes: Array(text.utf8))
    }
}
