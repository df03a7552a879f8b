import ArgumentParser
import Foundation
import Hub
import SimCounty

/// `hubd simulate`: the simulated county's departments, served until stopped, for trying the
/// service (`hubd serve`) against realistic feeds.
struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "启动模拟县的各部门数据服务（127.0.0.1），写出数据文件、真值和供映射使用的环境变量文件，直到被停止")
    @OptionGroup var county: CountyOptions
    @Option(help: "端口（0 为任意空闲端口）") var port: Int = 0
    @Option(help: "数据文件、真值和 env 文件的目录") var out: String = "var/sim"

    func run() throws {
        // The departments have delivered every month up to the previous one, and weekly feeds
        // are publishing the current one: everything `hubd serve` may ask for today.
        let now = Period(year: CivilDate.today.year, month: CivilDate.today.month)!
        let sim = try Simulator(counties: try county.configs(defaultPeriod: now.adding(months: -1)))
        sim.publishedThrough = max(now, sim.county.config.period)
        let dir = URL(fileURLWithPath: out)
        try sim.write(to: dir)
        try sim.writeDrops(to: dir, months: (1...3).map { sim.county.config.period.adding(months: 1 - $0) })
        try sim.start(port: port)
        let env = sim.environment(dropDirectory: dir).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\n") + "\n"
        try env.write(to: dir.appendingPathComponent("feeds.env"), atomically: true, encoding: .utf8)
        print(CountyOptions.describe(sim))
        print("模拟数据服务：\(sim.baseURL)　最新月份 \(sim.county.config.period)（\(Simulator.monthsKept) 个月内的每个月都可拉取）　环境变量：\(out)/feeds.env（hubd serve 前 export 这些变量）")
        fflush(nil)   // every stream: a pipe is block-buffered, whoever reads it sees the lines now
        while true { Thread.sleep(forTimeInterval: 3600) }
    }
}

/// The simulated county's size, seed and month, shared by `demo` and `simulate`.
struct CountyOptions: ParsableArguments {
    @Option(help: "模拟哪个县：yuzhou（禹州市，配 Mappings/ 的映射）或 yanling（鄢陵县，各部门数据格式不同，配 Mappings/examples/yanling/ 的映射）")
    var county: CountyStyle = .yuzhou
    @Option(help: "模拟县规模：1 为一个真实的县（禹州 22 个乡镇、约 600 个村、30 万户）") var scale: Double = 1.0
    @Option(help: "随机种子：同一种子生成同一个县（默认禹州 20261001，鄢陵 20261002）") var seed: UInt64?
    @Option(help: "最新的月份 YYYY-MM（demo 默认 2026-10，simulate 默认上个月）") var period: String?
    @Option(help: "模拟一个市的几个县（1–15）：禹州市在前，其余各县乡镇、户、预警各不相同；每个部门只有一份全市的数据（同一套映射），规模是每个县的")
    var counties: Int = 1

    func config(defaultPeriod: Period = Period(year: 2026, month: 10)!) throws -> CountyConfig {
        var c = county == .yanling ? CountyConfig.yanling() : CountyConfig()
        c.scale = scale
        c.period = try period.map(parsePeriod) ?? defaultPeriod
        if let seed { c.seed = seed }
        return c
    }

    /// The county, or the counties of a city (`--counties`), with the size, seed and month asked for.
    func configs(defaultPeriod: Period = Period(year: 2026, month: 10)!) throws -> [CountyConfig] {
        let first = try config(defaultPeriod: defaultPeriod)
        if counties == 1 { return [first] }
        guard (2...CountyConfig.maxCityCounties).contains(counties) else { throw ValidationError("--counties 应在 1 到 \(CountyConfig.maxCityCounties) 之间") }
        guard county == .yuzhou else { throw ValidationError("多个县的模拟只用禹州的数据格式，不能与 --county yanling 同用") }
        return CountyConfig.city(counties: counties, seed: first.seed).map { c in
            var c = c
            c.scale = first.scale
            c.period = first.period
            return c
        }
    }

    /// How the simulated area is named in what the commands print.
    static func describe(_ sim: Simulator) -> String {
        let t = sim.truth
        let area = sim.counties.count == 1
            ? "模拟县：\(sim.county.config.countyName)（\(sim.county.config.countyCode)）"
            : "模拟市：\(sim.counties.count) 个县（\(sim.counties.map { "\($0.config.countyName) \($0.config.countyCode)" }.joined(separator: "、"))）"
        return "\(area)，\(t.townships) 个乡镇，\(t.villages) 个行政村，\(t.households) 户；花名册 \(t.rosterHouseholds) 户 \(t.rosterPersons) 人"
    }

    /// The mappings folder for this county when the user left `--mappings` at its default.
    func mappings(_ given: String) -> String {
        county == .yanling && given == "Mappings" ? "Mappings/examples/yanling" : given
    }
}

extension CountyStyle: ExpressibleByArgument {}
