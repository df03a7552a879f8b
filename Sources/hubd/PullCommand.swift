import ArgumentParser
import Foundation
import Hub
import Connectors
import Logging
import SimCounty

struct PullCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "拉取一个来源某一期间的数据，写入监测库，输出一行统计")
    @Argument(help: "来源（映射文件名，不含 .yaml），如 medical-claims") var source: String
    @Option(help: "期间 YYYY-MM") var period: String
    @Flag(help: "拉取后不评估预警规则") var skipRules = false
    @OptionGroup var store: StoreOptions

    func run() throws {
        store.bootstrapLogging()
        let p = try parsePeriod(period)
        let loader: MappingLoader
        let mapping: Mapping
        do {
            loader = try store.loader()
            let url = store.mappingURL(source)
            guard FileManager.default.fileExists(atPath: url.path) else {
                let known = store.mappingFiles().map { $0.deletingPathExtension().lastPathComponent }
                throw ValidationError("找不到来源 \(source) 的映射文件 \(url.relativePathForDisplay)\(Suggest.closest(to: source, in: known).map { "，是否应为 \($0)？" } ?? "")")
            }
            mapping = try loader.load(file: url)
        } catch let e as DiagnosticList { throw report(e) }
        let db = try openStore(store.db)
        var pull = Pull(mapping: mapping, connector: try loader.connector(for: mapping), store: db)
        pull.progress = ProgressPrinter.make()
        pull.archive = store.documentArchive()
        do {
            let r = try pull.run(period: p)
            ProgressPrinter.clear()
            print(summaryLine(r))
            if let conflict = r.conflictMessage(mapping) {
                try db.raiseFeedAlert(source: mapping.source, period: p.description, kind: "conflict", message: conflict)
                printErr("数据质量预警：" + conflict)
            }
            if !skipRules {
                // Incremental: only the subjects this run's new or changed records concern.
                try evaluateRules(store, db: db, period: p, runID: r.runID)
            }
        } catch let e as PullError {
            ProgressPrinter.clear()
            printErr(e.description)
            throw ExitCode(2)
        }
    }
}

/// The main job on the embedded default: simulates the county's departments, pulls every
/// feed of the latest month into the SQLite store, and prints the counts per source.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "演示：启动模拟县的各部门数据服务（127.0.0.1），拉取每个来源最新一个月的数据，逐个输出统计并与模拟真值核对")
    @OptionGroup var county: CountyOptions
    @Option(help: "模拟数据文件和真值文件的目录") var simDir: String = "var/sim"
    @OptionGroup var store: StoreOptions

    func run() throws {
        var store = self.store
        store.mappings = county.mappings(store.mappings)
        store.bootstrapLogging()
        let configs = try county.configs()
        let p = configs[0].period
        let loader: MappingLoader
        do { loader = try store.loader() } catch { throw report(error as! DiagnosticList) }
        let t0 = Date()
        let sim = try Simulator(counties: configs)
        let dir = URL(fileURLWithPath: simDir)
        try sim.write(to: dir)
        try sim.start()
        defer { sim.stop() }
        let t = sim.truth
        print(CountyOptions.describe(sim))
        print("部门数据服务：\(sim.baseURL)　模拟数据与真值：\(simDir)/（生成用时 \(String(format: "%.1f", Date().timeIntervalSince(t0))) 秒）")
        print("监测库：\(store.db)　期间：\(p)")
        let db = try openStore(store.db)
        var env = ProcessInfo.processInfo.environment
        for (k, v) in sim.environment(dropDirectory: dir) { env[k] = v }
        var failures = 0
        let started = Date()
        // The roster first: the other feeds are matched against it.
        let files = store.mappingFiles().sorted { a, b in
            let ra = a.lastPathComponent.hasPrefix("roster"), rb = b.lastPathComponent.hasPrefix("roster")
            return ra != rb ? ra : a.lastPathComponent < b.lastPathComponent
        }
        for url in files {
            do {
                let m = try loader.load(file: url)
                var pull = Pull(mapping: m, connector: try loader.connector(for: m), store: db)
                pull.progress = ProgressPrinter.make()
                pull.archive = store.documentArchive()
                let r = try pull.run(period: p, environment: env)
                ProgressPrinter.clear()
                var line = summaryLine(r)
                if let expected = t.feeds[m.source] {
                    var held: [String: Int] = [:]
                    for o in m.outputs { held[o.type.name] = try db.recordCount(of: o.type, source: m.source) }
                    let ok = r.counts.read == expected.rows && r.counts.quarantined == expected.bad && held == expected.records
                    line += ok ? "　与真值一致" : "　与真值不符（应读 \(expected.rows) 行、隔离 \(expected.bad) 行、存 \(expected.records)，实存 \(held)）"
                    if !ok { failures += 1 }
                }
                print(line)
                if let conflict = r.conflictMessage(m) {
                    try db.raiseFeedAlert(source: m.source, period: p.description, kind: "conflict", message: conflict)
                    print("  数据质量预警：" + conflict)
                }
            } catch let e as DiagnosticList {
                failures += 1; _ = report(e)
            } catch let e as PullError {
                ProgressPrinter.clear()
                failures += 1; printErr(e.description)
            }
        }
        print("全部来源用时 \(String(format: "%.1f", Date().timeIntervalSince(started))) 秒。隔离的行：hubd quarantine --source 来源；运行记录：hubd runs")
        let ruleStart = Date()
        print("预警规则（\(p)）：")
        let alerts = try evaluateRules(store, db: db, period: p, keepAlerts: true)
        print("规则评估用时 \(String(format: "%.1f", Date().timeIntervalSince(ruleStart))) 秒。与模拟真值对照：")
        printScore(RuleScore(alerts: alerts, planted: t.planted, negatives: t.negatives))
        for (rule, why) in (t.blind ?? [:]).sorted(by: { $0.key < $1.key }) { print("  \(rule)：本县无法触发（\(why)），见 hubd rules check") }
        if failures > 0 { throw ExitCode(2) }
    }
}

struct RunsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "runs", abstract: "列出拉取运行记录（最新在前）")
    @Option(help: "只看某个来源") var source: String?
    @Option(help: "最多几条") var limit: Int = 30
    @OptionGroup var store: StoreOptions

    func run() throws {
        let db = try openStore(store.db)
        let runs = try db.runs(source: source, limit: limit)
        if runs.isEmpty { print("（尚无运行记录）"); return }
        print(["运行", "来源", "期间", "状态", "开始时间", "读取", "新增", "更新", "未变", "隔离", "跳过", "错误"].joined(separator: "\t"))
        for r in runs {
            let status = r.status.chinese
            let c = r.counts
            print(["#\(r.id)", r.source, r.period, status, r.startedAt, "\(c.read)", "\(c.inserted)", "\(c.updated)", "\(c.unchanged)",
                   "\(c.quarantined)", "\(c.skipped)", r.error ?? ""].joined(separator: "\t"))
        }
    }
}

struct QuarantineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quarantine",
        abstract: "导出某次运行被隔离的行及原因（CSV 可直接发回部门更正）")
    @Option(name: .customLong("run"), help: "运行编号；默认该来源最近一次成功的运行") var runID: Int64?
    @Option(help: "来源") var source: String?
    @Option(help: "输出格式：text 或 csv") var format: String = "text"
    @OptionGroup var store: StoreOptions

    func run() throws {
        let db = try openStore(store.db)
        var id = runID
        if id == nil {
            guard let source else { throw ValidationError("请给出 --run 或 --source") }
            id = try db.runs(source: source, limit: 100).first(where: { $0.status == .succeeded })?.id
            guard id != nil else { throw ValidationError("来源 \(source) 还没有成功的运行") }
        }
        let entries = try db.quarantine(runID: id!)
        try db.audit(NSUserName(), "导出隔离区", target: "运行 #\(id!)", detail: "命令行，\(entries.count) 行（含完整身份证号，供发回部门更正）", address: "local")
        if format == "csv" {
            // UTF-8 BOM so Excel and WPS open Chinese text correctly; formula-like cells neutralised.
            var out = "\u{FEFF}来源,期间,文件,行号,原因,原始数据\r\n"
            for e in entries {
                let raw = e.raw.map { "\($0[0])=\($0.count > 1 ? $0[1] : "")" }.joined(separator: "; ")
                out += [e.source, e.period, e.document, String(e.row), e.reasons.map(\.text).joined(separator: "；"), raw].map(CSVText.cell).joined(separator: ",") + "\r\n"
            }
            FileHandle.standardOutput.write(Data(out.utf8))
        } else {
            if entries.isEmpty { print("运行 #\(id!) 没有隔离的行") }
            for e in entries {
                print("\(e.document) 第 \(e.row) 行：\(e.reasons.map(\.text).joined(separator: "；"))")
            }
        }
    }
}

struct ConnectorsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "connectors", abstract: "列出可用的连接器及其 fetch 选项，以及数据格式及其选项")
    func run() throws {
        print("连接器（connector:，选项写在 fetch: 下）")
        for t in BuiltinConnectors.all {
            print("\(t.kind)")
            for (k, h) in t.optionsHelp { print("  \(k)：\(h)") }
        }
        print("\n格式（format:，选项写在与格式同名的键下，如 csv:）")
        for f in BuiltinFormats.all {
            print("\(f.name)\(f.optionsHelp.isEmpty ? "（无选项）" : "")")
            for (k, h) in f.optionsHelp { print("  \(k)：\(h)") }
        }
    }
}

/// Spreadsheet-safe CSV cells.
enum CSVText {
    static func cell(_ s: String) -> String {
        var v = s
        // A cell starting with = + - @ would run as a formula in Excel/WPS.
        if let f = v.first, "=+-@\t\r".contains(f) { v = "'" + v }
        if v.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
            v = "\"" + v.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        return v
    }
}

/// A live progress line on a terminal; periodic plain lines otherwise.
enum ProgressPrinter {
    nonisolated(unsafe) static var lastPlain = Date()
    nonisolated(unsafe) static var started = Date()
    static let tty = isatty(2) != 0

    static func make() -> (RunCounts) -> Void {
        started = Date(); lastPlain = Date()
        return { c in
            let secs = Date().timeIntervalSince(started)
            let rate = secs > 0 ? Int(Double(c.read) / secs) : 0
            let line = "已读 \(c.read) 行，存入 \(c.stored)，隔离 \(c.quarantined)，\(rate) 行/秒，\(String(format: "%.1f", secs)) 秒"
            if tty {
                FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
            } else if Date().timeIntervalSince(lastPlain) >= 5 {
                lastPlain = Date()
                printErr(line)
            }
        }
    }

    static func clear() {
        if tty { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
