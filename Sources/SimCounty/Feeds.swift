import Foundation
import Hub

/// One delivered feed: where the simulator serves it and what it holds.
public struct FeedFile: Sendable {
    public var source: String
    /// URL path on the simulator's server, or nil for a file-drop feed.
    public var path: String?
    /// File name when written to disk (the drop folder for file feeds).
    public var fileName: String
    public var contentType: String
    public var bytes: [UInt8]
    /// JSON APIs served page by page: the records of each page.
    public var pages: [[String: String]]? = nil
    /// A header the department's server wants (an API key), lower-cased name and value.
    public var requiredHeader: (name: String, value: String)? = nil
}

/// What the simulator planted, for tests and `hubd demo` to check against.
public struct GroundTruth: Codable, Sendable {
    public struct Feed: Codable, Sendable {
        public var rows = 0
        public var bad = 0
        /// Records each type should hold after a clean pull of this feed.
        public var records: [String: Int] = [:]
    }
    public struct BadRow: Codable, Sendable {
        public var source: String
        /// Text that identifies the row (a key value), found in its raw data.
        public var marker: String
        /// A phrase the quarantine reason must contain.
        public var reason: String
    }
    public var seed: UInt64
    public var scale: Double
    public var period: String
    public var county: String
    public var threshold: Int
    public var townships: Int
    public var villages: Int
    public var households: Int
    public var rosterHouseholds: Int
    public var rosterPersons: Int
    public var feeds: [String: Feed] = [:]
    public var badRows: [BadRow] = []
    /// Alert family → subjects (household id, resident ID, village code or station id) that must be flagged.
    public var planted: [String: [String]] = [:]
    /// Alert family → look-alikes that must not be flagged.
    public var negatives: [String: [String]] = [:]
    /// Alert families that cannot fire on this county's feeds, and why (a column the roster
    /// lacks, a feed the county does not have): `hubd rules check` must say so, and their
    /// planted cases are not counted.
    public var blind: [String: String]? = nil
}

extension GroundTruth {
    /// The truth of a city: what each county's part of the feeds holds, added up.
    init(merging parts: [GroundTruth]) {
        self = parts[0]
        county = parts.map(\.county).joined(separator: ",")
        for t in parts.dropFirst() {
            townships += t.townships; villages += t.villages; households += t.households
            rosterHouseholds += t.rosterHouseholds; rosterPersons += t.rosterPersons
            for (source, f) in t.feeds {
                var sum = feeds[source, default: Feed()]
                sum.rows += f.rows; sum.bad += f.bad
                for (type, n) in f.records { sum.records[type, default: 0] += n }
                feeds[source] = sum
            }
            badRows += t.badRows
            for (family, subjects) in t.planted { planted[family, default: []] += subjects }
            for (family, subjects) in t.negatives { negatives[family, default: []] += subjects }
        }
    }
}

/// Why the simulator could not be built as asked.
public struct SimulatorError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}

/// Builds every department's feed for the county's latest month, plants the risk cases, the
/// look-alikes and the bad rows, and renders each feed in its department's own shape.
public final class CountyFeeds {
    public let county: County
    public internal(set) var truth: GroundTruth
    var rng: SeededRandom
    var used = Set<Int>()
    var minzheng: [[String: String]] = []
    var certs: [[String: String]] = []
    var claims: [[String: String]] = []
    var outages: [[String: String]] = []
    var stations: [[String: String]] = []
    var rosterBad: [String: String] = [:]   // person id → replacement (bad ID or bad date marker)
    var perFamily: Int
    var eventCounter = 0

    static let categories = ["视力": "1", "听力": "2", "言语": "3", "肢体": "4", "智力": "5", "精神": "6", "多重": "7"]

    public init(county: County) {
        self.county = county
        rng = SeededRandom(seed: county.config.seed ^ 0xFEED)
        perFamily = max(2, Int((20 * county.config.scale).rounded()))
        truth = GroundTruth(seed: county.config.seed, scale: county.config.scale, period: county.period.description,
                            county: county.config.countyCode, threshold: county.config.threshold, townships: county.townships.count,
                            villages: county.villages.count, households: county.totalHouseholds,
                            rosterHouseholds: county.households.count, rosterPersons: county.households.reduce(0) { $0 + $1.members.count })
        background()
        plant()
        power()
    }

    var P: Period { county.period }
    var threshold: Int { county.config.threshold }

    // MARK: Background: what a quiet month looks like

    func outsider(_ year: Int? = nil) -> (String, String) {
        (county.residentID(birthYear: year ?? rng.int(1940...2005)), county.name())
    }

    func money(_ yuan: Double) -> String { String(format: "%.2f", yuan) }
    func ymd(_ d: CivilDate) -> String { d.description.replacingOccurrences(of: "-", with: "") }

    func addDibao(id: String, name: String, program: String = "农村低保", status: String, start: CivilDate, stop: CivilDate? = nil, persons: Int, region: String) {
        // The 民政 system prints some elderly people's IDs in the old 15-digit form.
        var shown = id
        let year = Int(id.dropFirst(6).prefix(4))!
        if year < 1960 && rng.chance(0.2) { shown = String(id.prefix(6)) + String(id.dropFirst(8).prefix(9)) }
        minzheng.append(["_id": id, "xm": name, "sfzh": shown, "jzlb": program, "dblb": program.hasSuffix("低保") ? rng.pick(["A", "B", "C"]) : "",
                         "zt": status, "bzrs": String(persons), "ybzj": money(Double(persons) * rng.double(280...420)),
                         "ksrq": ymd(start), "tzrq": stop.map(ymd) ?? "", "xzqh": region])
    }

    func addCert(_ person: SimPerson, category: String, level: Int, issued: CivilDate, living: Bool, care: Bool) {
        certs.append(["CertNo": person.id + Self.categories[category]! + String(level), "IdNo": person.id, "Name": person.name,
                      "IssueDate": issued.description, "Status": "有效", "LivingSubsidy": living ? "是" : "否", "CareSubsidy": care ? "是" : "否"])
    }

    func addClaim(id: String, name: String, total: Double, selfPay: Double, region: String? = nil) {
        let region = region ?? county.config.countyCode
        let day = rng.int(1...24)
        let fund = (total - selfPay) * rng.double(0.75...0.9)
        let ill = (total - selfPay - fund) * rng.double(0.5...0.9)
        let aid = total - selfPay - fund - ill
        let n = claims.count + 1
        claims.append(["setl_id": "Y\(county.config.countyCode)\(P.compact)\(String(format: "%06d", n))", "psn_no": String(format: "4110810%09d", rng.int(1...999_999_999)),
                       "psn_name": name, "certno": id, "med_type": rng.pick(["21", "21", "21", "14"]), "fixmedins_name": rng.pick(["禹州市人民医院", "禹州市中医院", "许昌市中心医院", "河南省人民医院", "郑州大学第一附属医院"]),
                       "begndate": ymd(county.date(P.year, P.month, day)), "enddate": ymd(county.date(P.year, P.month, day + 4)),
                       "setl_time": "\(county.date(P.year, P.month, day + 4)) \(String(format: "%02d:%02d:%02d", rng.int(8...17), rng.int(0...59), rng.int(0...59)))",
                       "medfee_sumamt": money(total), "inscp_scp_amt": money(total * 0.92), "hifp_pay": money(fund), "hifmi_pay": money(ill), "maf_pay": money(aid),
                       "fund_pay_sumamt": money(fund + ill + aid), "psn_part_amt": money(selfPay), "insuplc_admdvs": region])
    }

    func addOutage(village: String, start: CivilDate, days: Int, cause: String) {
        let end = start.adding(days: days)
        eventCounter += 1
        outages.append(["event_id": "SW\(county.config.index == 0 ? "" : county.config.countyCode)\(P.year)\(String(format: "%05d", eventCounter))", "village_code": village,
                        "start": "\(start) 08:00:00", "end": "\(end) 08:00:00", "cause": cause])
    }

    private func background() {
        let hh = county.households
        for (i, h) in hh.enumerated() {
            let region = county.villages[h.village].code
            if h.dibao {
                addDibao(id: h.members[0].id, name: h.members[0].name, status: "在保", start: county.monthsBefore(rng.int(6...60)), persons: h.members.count, region: region)
            }
            if h.members[0].disability != "无" {
                addCert(h.members[0], category: rng.pick(["肢体", "视力", "听力"]), level: rng.int(3...4), issued: county.monthsBefore(rng.int(13...120)), living: h.dibao, care: false)
            }
            // Some roster members are in hospital, but their households can carry it.
            if h.income >= 15000 && rng.chance(0.01) {
                let p = h.members[rng.int(0...(h.members.count - 1))]
                let cap = Double(h.income - threshold - 1500) * Double(h.members.count)
                addClaim(id: p.id, name: p.name, total: rng.double(50_000...120_000), selfPay: min(cap, rng.double(3000...15000)))
            }
            _ = i
        }
        let outsiders = max(20, Int(Double(county.totalHouseholds) * 0.004))
        for _ in 0..<outsiders {
            let (id, name) = outsider()
            addClaim(id: id, name: name, total: rng.double(50_000...150_000), selfPay: rng.double(4000...18000))
        }
        for _ in 0..<max(10, outsiders / 2) {
            let (id, name) = outsider()
            addDibao(id: id, name: name, status: "在保", start: county.monthsBefore(rng.int(3...60)), persons: rng.int(1...4),
                     region: rng.pick(county.villages).code)
            minzheng[minzheng.count - 1]["_outsider"] = "1"
        }
        for _ in 0..<max(10, outsiders / 3) {
            let (id, name) = outsider()
            addCert(SimPerson(id: id, name: name, relation: "", birthYear: 0), category: rng.pick(Array(Self.categories.keys).sorted()),
                    level: rng.int(1...4), issued: county.monthsBefore(rng.int(13...120)), living: rng.chance(0.5), care: rng.chance(0.3))
            certs[certs.count - 1]["_outsider"] = "1"
        }
        for v in county.villages where rng.chance(0.3) {
            addOutage(village: v.code, start: county.monthsBefore(rng.int(1...9), day: rng.int(1...20)), days: rng.int(1...4), cause: rng.pick(["管网维修", "水源不足", "停电"]))
        }
        let stationCount = max(3, Int(100 * county.config.scale))
        var week = P.firstDay
        while week.daysSinceEpoch % 7 != 4 { week = week.adding(days: 1) }   // Mondays (1970-01-05 was a Monday)
        let mondays = stride(from: 0, to: 35, by: 7).map { week.adding(days: $0) }.filter { $0 <= P.lastDay }
        for s in 0..<stationCount {
            let v = rng.pick(county.villages)
            let cap = Double(rng.pick([60, 100, 200, 300]))
            let id = "PV\(v.code)\(String(format: "%02d", s % 100))"
            for m in mondays { addStation(id, v.code, m, cap, rng.double(0.82...1.0)) }
        }
    }

    func addStation(_ id: String, _ village: String, _ week: CivilDate, _ cap: Double, _ index: Double) {
        stations.append(["station_code": id, "village": village, "week_start": week.description, "gen_kwh": String(format: "%.1f", cap * 3.6 * 7 * index),
                         "cap_kw": String(format: "%.0f", cap), "pr": String(format: "%.2f", index)])
    }

    // MARK: Planted cases

    /// The next roster household not yet used by another planted case that satisfies `ok`.
    func take(_ ok: (SimHousehold) -> Bool) -> Int? {
        for i in county.households.indices where !used.contains(i) && ok(county.households[i]) && county.households[i].members.count >= 2 {
            used.insert(i); return i
        }
        return nil
    }

    func mark(_ family: String, _ subject: String, negative: Bool = false) {
        if negative { truth.negatives[family, default: []].append(subject) } else { truth.planted[family, default: []].append(subject) }
    }

    private func plant() {
        let T = Double(threshold)
        let quiet: (SimHousehold) -> Bool = { $0.status == "未纳入" && !$0.dibao && $0.members[0].disability == "无" }
        for _ in 0..<perFamily {
            // 1. Medical burden: income minus self-paid costs falls below the threshold.
            if let i = take({ quiet($0) && $0.income < 15000 }) {
                let h = county.households[i]
                let size = Double(h.members.count)
                let selfPay = (Double(h.income) - T) * size + rng.double(2000...9000)
                addClaim(id: h.members[1].id, name: h.members[1].name, total: selfPay + rng.double(40_000...90_000), selfPay: selfPay)
                mark("medical_burden", h.id)
            }
            if let i = take({ quiet($0) && $0.income > 20000 }) {
                let h = county.households[i]
                addClaim(id: h.members[0].id, name: h.members[0].name, total: rng.double(120_000...200_000), selfPay: rng.double(6000...9000))
                mark("medical_burden", h.id, negative: true)
            }
            // 2. Large self-pay for someone outside the roster.
            let (oid, oname) = outsider()
            addClaim(id: oid, name: oname, total: rng.double(90_000...200_000), selfPay: rng.double(25_000...60_000))
            mark("medical_outside_roster", oid)
            let (nid, nname) = outsider()
            addClaim(id: nid, name: nname, total: rng.double(60_000...90_000), selfPay: rng.double(5000...9000))
            mark("medical_outside_roster", nid, negative: true)
            // 3. Newly enrolled 低保/特困, not monitored.
            if let i = take(quiet) {
                let h = county.households[i]
                addDibao(id: h.members[0].id, name: h.members[0].name, program: rng.pick(["农村低保", "特困分散供养"]), status: "新增",
                         start: county.date(P.year, P.month, rng.int(1...20)), persons: h.members.count, region: county.villages[h.village].code)
                mark("new_dibao_unmonitored", h.id)
            }
            if let i = take({ $0.status == "监测中" && !$0.dibao && $0.members[0].disability == "无" }) {
                let h = county.households[i]
                addDibao(id: h.members[0].id, name: h.members[0].name, status: "新增", start: county.date(P.year, P.month, rng.int(1...20)),
                         persons: h.members.count, region: county.villages[h.village].code)
                mark("new_dibao_unmonitored", h.id, negative: true)
            }
            // 4. 低保 stopped for a monitored household.
            if let i = take({ $0.status == "监测中" && $0.dibao }) {
                let h = county.households[i]
                if let k = minzheng.firstIndex(where: { $0["_id"] == h.members[0].id }) {
                    minzheng[k]["zt"] = "停保"
                    minzheng[k]["tzrq"] = ymd(county.date(P.year, P.month, rng.int(1...25)))
                }
                mark("dibao_stopped_monitored", h.id)
            }
            // Someone outside the roster leaving 低保 is not a monitoring case.
            let (sid, sname) = outsider()
            addDibao(id: sid, name: sname, status: "停保", start: county.monthsBefore(rng.int(12...40)),
                     stop: county.date(P.year, P.month, rng.int(1...25)), persons: rng.int(1...3), region: rng.pick(county.villages).code)
            mark("dibao_stopped_monitored", sid, negative: true)
            // 5. New or upgraded severe disability.
            if let i = take(quiet) {
                let h = county.households[i]
                let severe = rng.chance(0.7)
                addCert(h.members[1], category: severe ? rng.pick(["肢体", "视力", "听力", "多重"]) : rng.pick(["智力", "精神"]), level: severe ? rng.int(1...2) : 3,
                        issued: county.date(P.year, P.month, rng.int(1...25)), living: false, care: false)
                mark("severe_disability_new", h.id)
            }
            if let i = take(quiet) {
                let h = county.households[i]
                addCert(h.members[1], category: "肢体", level: rng.pick([3, 4]), issued: county.date(P.year, P.month, rng.int(1...25)), living: false, care: false)
                mark("severe_disability_new", h.id, negative: true)
            }
            // 6. A disabled person in a 低保 household without the living subsidy.
            if let i = take({ $0.status == "未纳入" && $0.dibao && $0.members[0].disability == "无" }) {
                let h = county.households[i]
                addCert(h.members[1], category: rng.pick(["肢体", "视力"]), level: rng.int(3...4), issued: county.monthsBefore(rng.int(13...60)), living: false, care: false)
                mark("disabled_dibao_no_subsidy", h.id)
            }
            if let i = take({ $0.status == "未纳入" && $0.dibao && $0.members[0].disability == "无" }) {
                let h = county.households[i]
                addCert(h.members[1], category: "肢体", level: 4, issued: county.monthsBefore(rng.int(13...60)), living: true, care: false)
                mark("disabled_dibao_no_subsidy", h.id, negative: true)
            }
            // 7. Income below the threshold but not monitored (应纳未纳).
            if let i = take({ quiet($0) && $0.category == "脱贫户" }) {
                county.households[i].income = rng.int(4000...(threshold - 300))
                mark("income_below_unmonitored", county.households[i].id)
            }
            if let i = take({ quiet($0) && $0.category == "脱贫户" }) {
                county.households[i].income = threshold + rng.int(100...400)
                mark("income_below_unmonitored", county.households[i].id, negative: true)
            }
            // 8. Risk marked eliminated although income is below the threshold or monitoring lasted under six months.
            if let i = take({ $0.status == "风险已消除" && !$0.dibao }) {
                if rng.chance(0.5) {
                    county.households[i].income = rng.int(5000...(threshold - 200))
                } else {
                    let m = county.monthsBefore(rng.int(5...8))
                    county.households[i].monitoredOn = m
                    county.households[i].eliminatedOn = m.adding(days: rng.int(60...150))
                    county.households[i].measures = county.households[i].measures.map { ($0.0, m.adding(days: 10)) }
                }
                mark("risk_elimination_false", county.households[i].id)
            }
            if let i = take({ $0.status == "风险已消除" && !$0.dibao }) {
                county.households[i].income = threshold + rng.int(2000...5000)
                mark("risk_elimination_false", county.households[i].id, negative: true)
            }
            // 9. Measures that do not match the reason for inclusion.
            if let i = take({ $0.status == "监测中" && !$0.dibao }) {
                county.households[i].reason = "因病"
                county.households[i].members[0].health = "患有大病"
                county.households[i].measures = [("产业帮扶", county.households[i].monitoredOn!.adding(days: 20))]
                mark("measure_mismatch", county.households[i].id)
            }
            if let i = take({ $0.status == "监测中" && !$0.dibao }) {
                county.households[i].reason = "因病"
                county.households[i].measures = [("健康帮扶", county.households[i].monitoredOn!.adding(days: 20))]
                mark("measure_mismatch", county.households[i].id, negative: true)
            }
            // 11. Electricity collapsed against the household's own trailing level (and a seasonal dip that is not).
            if let i = take({ quiet($0) && $0.baseKwh > 100 }) {
                county.households[i].planted = "power_collapse"
                mark("power_collapse", county.households[i].id)
            }
            if let i = take({ quiet($0) && $0.baseKwh > 100 }) {
                county.households[i].planted = "power_dip"
                mark("power_collapse", county.households[i].id, negative: true)
            }
            // 13. Roster data not updated for over a year (信息更新不及时).
            if let i = take(quiet) {
                county.households[i].updatedOn = county.monthsBefore(rng.int(14...30))
                mark("roster_stale", county.households[i].id)
            }
            if let i = take(quiet) {
                county.households[i].updatedOn = county.monthsBefore(10)
                mark("roster_stale", county.households[i].id, negative: true)
            }
        }
        // 10. Drinking-water interruptions beyond 36 days a year, in villages with roster households.
        let rosterVillages = Array(Set(county.households.map(\.village))).sorted()
        let waterVillages = rosterVillages.prefix(perFamily * 2)
        for (k, v) in waterVillages.enumerated() {
            let code = county.villages[v].code
            outages.removeAll { $0["village_code"] == code }
            if k % 2 == 0 {
                addOutage(village: code, start: county.monthsBefore(7, day: 3), days: rng.int(15...20), cause: "水源不足")
                addOutage(village: code, start: county.monthsBefore(3, day: 5), days: rng.int(12...15), cause: "管网维修")
                addOutage(village: code, start: county.date(P.year, P.month, 2), days: rng.int(10...15), cause: "水源不足")
                mark("water_outage", code)
            } else {
                addOutage(village: code, start: county.monthsBefore(6, day: 3), days: 12, cause: "管网维修")
                addOutage(village: code, start: county.date(P.year, P.month, 4), days: 18, cause: "水源不足")
                mark("water_outage", code, negative: true)
            }
        }
        // 12. PV stations whose capability index is low (one bad week is not a case).
        let ids = Array(Set(stations.map { $0["station_code"]! })).sorted()
        for (k, id) in ids.prefix(min(ids.count, perFamily * 2)).enumerated() {
            for j in stations.indices where stations[j]["station_code"] == id {
                let cap = Double(stations[j]["cap_kw"]!)!
                let first = stations[j]["week_start"] == stations.first(where: { $0["station_code"] == id })!["week_start"]
                let index = k % 2 == 0 ? rng.double(0.3...0.5) : (first ? 0.55 : 0.9)
                stations[j]["pr"] = String(format: "%.2f", index)
                stations[j]["gen_kwh"] = String(format: "%.1f", cap * 3.6 * 7 * index)
            }
            mark("pv_low", id, negative: k % 2 == 1)
        }
    }

    // MARK: Power, six months per roster household

    private func power() {
        for i in county.households.indices {
            var h = county.households[i]
            h.kwh = (0..<6).map { _ in h.baseKwh * rng.double(0.88...1.12) }
            if h.planted == "power_collapse" { h.kwh[5] = h.baseKwh * rng.double(0.08...0.25) }
            if h.planted == "power_dip" { h.kwh[5] = h.baseKwh * rng.double(0.6...0.72) }
            county.households[i] = h
        }
    }
}
