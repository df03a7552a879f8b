import Foundation
import Hub

/// A deterministic pseudo-random generator (SplitMix64): the same seed, the same county.
struct SeededRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state = state &+ 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func int(_ r: ClosedRange<Int>) -> Int { r.lowerBound + Int(next() % UInt64(r.upperBound - r.lowerBound + 1)) }
    mutating func double(_ r: ClosedRange<Double>) -> Double { r.lowerBound + (r.upperBound - r.lowerBound) * Double(next() >> 11) / Double(1 << 53) }
    mutating func chance(_ p: Double) -> Bool { double(0...1) < p }
    mutating func pick<T>(_ a: [T]) -> T { a[int(0...(a.count - 1))] }
}

/// The size and shape of the simulated county.
public struct CountyConfig: Sendable {
    public var seed: UInt64 = 20261001
    /// 1.0 is a real county: 22 townships, about 600 villages, 300,000 households.
    public var scale: Double = 1.0
    /// The latest month the departments deliver.
    public var period: Period = Period(year: 2026, month: 10)!
    public var countyCode = "411081"
    public var countyName = "禹州市"
    /// The monitoring income threshold the planted cases are built around (元/人/年).
    public var threshold = 7000
    /// How its departments deliver: each county's feeds come in shapes of their own.
    public var style: CountyStyle = .yuzhou
    /// Township names when not the style's own (the other counties of a simulated city).
    public var townshipNames: [String]? = nil
    /// The county's place in a simulated city (0 for a county on its own): keeps meter numbers
    /// and event ids of different counties apart.
    public var index = 0
    /// The region code of people from elsewhere that the county's feeds mention (3% of IDs).
    public var outsideCode = "411023"
    public init() {}

    /// The counties of a simulated city (`hubd demo --counties N`): 禹州市 first, as on its
    /// own, then the other counties of 许昌 and 商丘 with townships of their own; each its own
    /// seed (the city's seed plus its place), so the same seed gives the same city.
    public static func city(counties n: Int, seed: UInt64? = nil) -> [CountyConfig] {
        let others = [("411082", "长葛市"), ("411025", "襄城县"), ("411024", "鄢陵县"), ("411003", "建安区"), ("411002", "魏都区"),
                      ("411402", "梁园区"), ("411403", "睢阳区"), ("411421", "民权县"), ("411422", "睢县"), ("411423", "宁陵县"),
                      ("411424", "柘城县"), ("411425", "虞城县"), ("411426", "夏邑县"), ("411481", "永城市")]
        var first = CountyConfig()
        if let seed { first.seed = seed }
        var out = [first]
        for (k, (code, name)) in others.prefix(max(0, n - 1)).enumerated() {
            var c = first
            c.index = k + 1
            c.seed = first.seed &+ UInt64(k + 1)
            c.countyCode = code
            c.countyName = name
            c.outsideCode = String(format: "4100%02d", k + 1)
            var rng = SeededRandom(seed: c.seed ^ 0x70_574E)
            var names: [String] = []
            while names.count < 12 + rng.int(0...10) {
                let n = rng.pick(County.villageWords) + rng.pick(County.villageWords) + (rng.chance(0.8) ? "镇" : "乡")
                if !names.contains(n) { names.append(n) }
            }
            c.townshipNames = names
            out.append(c)
        }
        return out
    }
    /// The most counties `city(counties:)` makes.
    public static let maxCityCounties = 15

    /// The second simulated county (鄢陵县): 12 townships, feeds in other shapes than the first
    /// — see `CountyStyle.yanling`.
    public static func yanling() -> CountyConfig {
        var c = CountyConfig()
        c.seed = 20261002
        c.countyCode = "411024"
        c.countyName = "鄢陵县"
        c.style = .yanling
        return c
    }
}

/// The shapes a simulated county's departments deliver in.
public enum CountyStyle: String, Sendable, CaseIterable {
    /// 禹州市, served for the shipped mappings in `Mappings/`: an Excel roster with every column,
    /// a paged 民政 API, namespaced 残联 XML, a GB18030 医保 file drop, NDJSON outages, a long
    /// 电力 CSV and weekly 光伏 JSON.
    case yuzhou
    /// 鄢陵县, for the example mappings in `Mappings/examples/yanling/`: a GB18030 roster CSV
    /// without a monitoring-status or update-date column and a person listed in two households,
    /// a measures list with several measures in one cell, 民政 XML without a status column,
    /// 残联 JSON and 医保 CSV without any region code and with UTC offsets in timestamps, an
    /// outage still going on, a wide 电力 table (one column per month) and no 光伏 feed.
    case yanling

    var townshipNames: [String] {
        switch self {
        case .yuzhou: return County.townshipNames
        case .yanling: return ["安陵镇", "马栏镇", "柏梁镇", "陈化店镇", "望田镇", "大马镇", "陶城镇", "张桥镇", "南坞乡", "只乐镇", "彭店镇", "马坊镇"]
        }
    }
}

struct SimPerson {
    var id: String
    var name: String
    var relation: String
    var birthYear: Int
    var health = "健康"
    var disability = "无"
}

struct SimHousehold {
    var id: String
    var village: Int
    var category: String
    var status: String
    var type: String
    var reason: String
    var monitoredOn: CivilDate?
    var eliminatedOn: CivilDate?
    var income: Int           // 元/人/年
    var labour: Int
    var updatedOn: CivilDate
    var members: [SimPerson]
    var measures: [(String, CivilDate)]
    var dibao: Bool
    var meter: String
    var baseKwh: Double
    var kwh: [Double] = []    // months P-5 … P
    var planted: String? = nil
}

struct SimVillage { var code: String; var name: String; var township: Int }

/// A synthetic county: its townships, villages and roster households, built from a seed.
public final class County {
    public let config: CountyConfig
    var rng: SeededRandom
    let townships: [(code: String, name: String)]
    var villages: [SimVillage] = []
    var households: [SimHousehold] = []
    let totalHouseholds: Int
    private var sequence: [String: Int] = [:]
    private var perVillage: [Int: Int] = [:]

    static let townshipNames = ["钧台街道", "夏都街道", "韩城街道", "颍川街道", "褚河街道", "火龙镇", "顺店镇", "方山镇", "神垕镇", "鸿畅镇", "梁北镇",
                                "古城镇", "无梁镇", "文殊镇", "鸠山镇", "范坡镇", "郭连镇", "朱阁镇", "浅井镇", "方岗镇", "花石镇", "磨街乡"]
    static let villageWords = ["东", "西", "南", "北", "前", "后", "大", "小", "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "河", "山",
                               "桥", "庄", "沟", "岭", "湾", "坡", "营", "寨", "店", "集", "楼", "堂", "岗", "洼", "林", "泉"]
    static let surnames = Array("王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文").map(String.init)
    static let givenChars = Array("秀英桂兰玉凤建华国志强文明海燕春梅红霞丽娟明亮军伟芳敏静磊洋勇艳杰娜涛超平刚辉鹏飞鑫宇浩然子涵欣怡梓轩雨泽晨阳佳琪瑞").map(String.init)
    static let reasons = ["因病", "因残", "因学", "因务工就业不稳", "因意外事故", "缺劳动力"]
    static let measureFor = ["因病": "健康帮扶", "因残": "综合保障", "因学": "教育帮扶", "因务工就业不稳": "就业帮扶", "因意外事故": "综合保障", "缺劳动力": "综合保障"]

    public init(_ config: CountyConfig) {
        self.config = config
        rng = SeededRandom(seed: config.seed)
        let names = config.townshipNames ?? config.style.townshipNames
        let streets = config.style == .yuzhou && config.townshipNames == nil ? 5 : 0
        townships = names.enumerated().map { i, n in
            (config.countyCode + (i < streets ? String(format: "%03d", i + 1) : String(format: "%03d", 100 + i - streets)), n)
        }
        totalHouseholds = max(500, Int(300_000 * config.scale))
        let villageCount = max(names.count, Int((617 * config.scale * Double(names.count) / 22).rounded()))
        var perTownship = [Int](repeating: 0, count: names.count)
        var usedNames = Set<String>()
        for v in 0..<villageCount {
            let t = v % names.count
            perTownship[t] += 1
            var name: String
            repeat { name = rng.pick(Self.villageWords) + rng.pick(Self.villageWords) + "村" } while usedNames.contains(townships[t].name + name)
            usedNames.insert(townships[t].name + name)
            villages.append(SimVillage(code: townships[t].code + String(format: "%03d", 200 + perTownship[t]), name: name, township: t))
        }
        let rosterCount = max(120, Int(Double(totalHouseholds) * 0.09))
        for i in 0..<rosterCount { households.append(makeHousehold(i)) }
    }

    var period: Period { config.period }

    func name() -> String { rng.pick(Self.surnames) + rng.pick(Self.givenChars) + (rng.chance(0.7) ? rng.pick(Self.givenChars) : "") }

    /// A new, unique, valid 18-digit resident ID.
    func residentID(birthYear: Int, address: String? = nil) -> String {
        let addr = address ?? (rng.chance(0.03) ? config.outsideCode : config.countyCode)
        let birth = CivilDate(year: birthYear, month: rng.int(1...12), day: rng.int(1...28))!
        let b = String(birth.description.filter(\.isNumber))
        let key = addr + b
        var seq = sequence[key, default: rng.int(1...300)] + 1
        if seq > 999 { seq = 1 }
        sequence[key] = seq
        let s17 = key + String(format: "%03d", seq)
        return s17 + String(ResidentID.checkCharacter(for: s17.map { UInt8(String($0))! }))
    }

    func date(_ y: Int, _ m: Int, _ d: Int) -> CivilDate { CivilDate(year: y, month: m, day: min(d, CivilDate.daysIn(year: y, month: m)))! }
    func monthsBefore(_ n: Int, day: Int = 10) -> CivilDate {
        let p = period.adding(months: -n)
        return date(p.year, p.month, day)
    }

    private func makeHousehold(_ i: Int) -> SimHousehold {
        let v = rng.int(0...(villages.count - 1))
        let poorOut = rng.chance(0.9)
        var status = "未纳入", type = "", reason = ""
        var monitoredOn: CivilDate? = nil, eliminatedOn: CivilDate? = nil
        if poorOut {
            let r = rng.double(0...1)
            if r < 0.06 { status = "监测中" } else if r < 0.10 { status = "风险已消除" }
        } else {
            status = rng.chance(0.7) ? "监测中" : "风险已消除"
        }
        if status != "未纳入" {
            type = poorOut ? (rng.chance(0.7) ? "脱贫不稳定户" : "突发严重困难户") : (rng.chance(0.7) ? "边缘易致贫户" : "突发严重困难户")
            reason = rng.pick(Self.reasons)
            monitoredOn = monthsBefore(rng.int(8...48), day: rng.int(1...28))
            if status == "风险已消除" { eliminatedOn = monitoredOn!.adding(days: rng.int(240...540)) }
            if let e = eliminatedOn, e >= period.firstDay { eliminatedOn = monthsBefore(1) }
        }
        let size = rng.int(1...6)
        var members: [SimPerson] = []
        let headYear = rng.int(1945...1985)
        members.append(SimPerson(id: residentID(birthYear: headYear), name: name(), relation: "户主", birthYear: headYear))
        for k in 1..<size {
            let rel = k == 1 ? "配偶" : (k <= 3 ? rng.pick(["之子", "之女"]) : rng.pick(["之孙子", "之孙女", "之母", "之父"]))
            let by = rel == "配偶" ? headYear + rng.int(-3...3) : (rel.hasPrefix("之孙") ? rng.int(2008...2020) : rel == "之母" || rel == "之父" ? headYear - rng.int(22...30) : rng.int(max(headYear + 20, 1970)...2012))
            members.append(SimPerson(id: residentID(birthYear: min(by, 2022)), name: name(), relation: rel, birthYear: min(by, 2022)))
        }
        if reason == "因病" { members[0].health = rng.pick(["长期慢性病", "患有大病"]) }
        if reason == "因残" { members[0].disability = "残疾" }
        var measures: [(String, CivilDate)] = []
        if let m = monitoredOn {
            measures.append((Self.measureFor[reason]!, m.adding(days: rng.int(5...30))))
            if rng.chance(0.5) { measures.append(("产业帮扶", m.adding(days: rng.int(10...60)))) }
        }
        let income = status == "未纳入" ? rng.int(9000...26000) : rng.int(7600...13000)
        let village = villages[v]
        perVillage[v, default: 0] += 1
        let id = village.code + String(format: "%04d", perVillage[v]!)
        return SimHousehold(
            id: id, village: v, category: poorOut ? "脱贫户" : "一般农户", status: status, type: type, reason: reason,
            monitoredOn: monitoredOn, eliminatedOn: eliminatedOn, income: income, labour: min(size, rng.int(0...3)),
            updatedOn: monthsBefore(rng.int(0...5), day: rng.int(1...28)), members: members, measures: measures,
            dibao: status == "监测中" ? rng.chance(0.5) : rng.chance(0.2), meter: String(format: "41%09d", 100_000 + i + config.index * 10_000_000),
            baseKwh: rng.double(60...300))
    }
}
