import ArgumentParser
import Foundation
import Hub
import SimCounty
import Connectors

/// Loads the record types and the rules; prints problems with `FILE:LINE:COLUMN`.
func loadRules(_ store: StoreOptions, strict: Bool, rulesDirectory: URL? = nil) throws -> (TypeCatalog, [Rule], RuleParams) {
    let types: TypeCatalog
    do { types = try store.loadTypes() } catch { throw report(error as! DiagnosticList) }
    let (rules, params, problems) = RuleLoader.loadDirectory(rulesDirectory ?? MappingsFolder.rules(of: URL(fileURLWithPath: store.mappings)), types: types)
    if !problems.isEmpty {
        _ = report(DiagnosticList(problems))
        if strict { throw ExitCode(1) }
        printErr("（以上规则文件有错，已跳过；其余 \(rules.count) 条规则照常使用）")
    }
    return (types, rules, params)
}

/// Evaluates the rules for a period and stores the alerts; prints a line per rule. Returns the
/// alerts only when asked to keep them (they are otherwise streamed into the store).
@discardableResult
func evaluateRules(_ store: StoreOptions, db: any HubStore, period: Period, runID: Int64? = nil, quiet: Bool = false,
                   keepAlerts: Bool = false) throws -> [Alert] {
    let (types, rules, params) = try loadRules(store, strict: false)
    let stats = ProcessInfo.processInfo.environment["HUB_RULE_STATS"] != nil
    var clock = Date()
    func lap(_ what: String) {
        guard stats else { return }
        // Resident and peak memory so far, from /proc (Linux).
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let mem = status.split(separator: "\n").filter { $0.hasPrefix("VmRSS") || $0.hasPrefix("VmHWM") }
            .map { $0.replacingOccurrences(of: "\t", with: "").replacingOccurrences(of: "  ", with: "") }.joined(separator: ", ")
        FileHandle.standardError.write(Data("rules: \(what) \(String(format: "%.2f", Date().timeIntervalSince(clock))) s (\(mem))\n".utf8))
        clock = Date()
    }
    let engine = try RuleEngine(rules: rules, params: params, types: types, store: db)
    let only = try runID.flatMap { try engine.subjects(touchedBy: $0) }
    if runID != nil { lap("subjects touched by the run") }
    let result = try engine.evaluateAndStore(period: period, only: only, into: db, evaluatedRun: runID, keepAlerts: keepAlerts)
    lap("evaluate and store (evaluator waited \(String(format: "%.2f", result.evaluatorWaited)) s, writer waited \(String(format: "%.2f", result.writerWaited)) s)")
    let saved = result.totals
    if !quiet {
        for r in rules { print("  \(r.name)（\(r.title)）：\(saved.byRule[r.name] ?? 0) 条") }
        print("预警 \(saved.alerts) 条（新增 \(saved.newAlerts)，内容更新 \(saved.updated)\("，撤回 \(saved.withdrawn)")），新立案件 \(saved.newCases) 件"
              + (only.map { "；本次只评估受影响的 \($0.count) 个对象" } ?? (runID != nil ? "；本次涉及的对象超过 10 万个，已评估全部对象" : "")))
        // After a re-pull (a department's correction of a past month): which alerts came and went.
        if runID != nil, saved.newAlerts + saved.withdrawn > 0 {
            for c in saved.raisedList { print("  新增 \(c.text)") }
            if saved.newAlerts > saved.raisedList.count { print("  ……另有 \(saved.newAlerts - saved.raisedList.count) 条新增") }
            for c in saved.withdrawnList { print("  撤回 \(c.text)") }
            if saved.withdrawn > saved.withdrawnList.count { print("  ……另有 \(saved.withdrawn - saved.withdrawnList.count) 条撤回") }
        }
    }
    return result.alerts
}

struct RulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "检查和运行预警规则（Mappings/rules/）",
        subcommands: [Check.self, Eval.self, Score.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "检查全部规则文件：每个错误按 文件:行:列: 说明 输出；有错时退出码非零")
        @OptionGroup var store: StoreOptions
        func run() throws {
            let (types, rules, params) = try loadRules(store, strict: true)
            let dir = MappingsFolder.rules(of: URL(fileURLWithPath: store.mappings))
            if rules.isEmpty {
                printErr("在 \(dir.path) 中没有找到规则文件（*.yaml）；用 --mappings 指定映射目录（规则在其下的 rules/）")
                throw ExitCode(1)
            }
            for r in rules { print("\(r.file)：正确（\(r.name)，对象 \(r.subject.rawValue)，严重度 \(r.severity.chinese)）") }
            print("参数（\(params.province)）：" + params.values.keys.sorted().joined(separator: "、"))
            // Rules whose condition reads fields no mapping fills cannot fire: say so.
            let loader = MappingLoader(types: types, connectors: BuiltinConnectors.registry)
            let mappings = store.mappingFiles().compactMap { try? loader.load(file: $0) }
            for line in RuleCoverage.describe(RuleCoverage.gaps(rules: rules, mappings: mappings, types: types)) { print("警告：" + line) }
        }
    }

    struct Eval: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "重新评估某一期间的全部规则；重复运行不会产生新的预警或案件")
        @Option(help: "期间 YYYY-MM") var period: String
        @OptionGroup var store: StoreOptions
        func run() throws {
            let db = try openStore(store.db)
            try evaluateRules(store, db: db, period: try parsePeriod(period))
        }
    }

    struct Score: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "按模拟县的真值文件给某一期间的预警打分：各类召回率、精确率、误报")
        @Option(help: "期间 YYYY-MM") var period: String
        @Option(help: "真值文件") var truth: String = "var/sim/ground-truth.json"
        @OptionGroup var store: StoreOptions
        func run() throws {
            let t = try JSONDecoder().decode(GroundTruth.self, from: Data(contentsOf: URL(fileURLWithPath: truth)))
            let db = try openStore(store.db)
            let (types, rules, params) = try loadRules(store, strict: false)
            let alerts = try RuleEngine(rules: rules, params: params, types: types, store: db).evaluate(period: try parsePeriod(period))
            printScore(RuleScore(alerts: alerts, planted: t.planted, negatives: t.negatives))
        }
    }
}

func printScore(_ s: RuleScore) {
    print(["规则", "埋入", "发现", "召回率", "预警数", "精确率", "对照组", "误报"].joined(separator: "\t"))
    for l in s.lines {
        print([l.rule, "\(l.planted)", "\(l.found)", String(format: "%.0f%%", l.recall * 100), "\(l.alerts)",
               String(format: "%.0f%%", l.precision * 100), "\(l.negatives)", "\(l.negativesFlagged)"].joined(separator: "\t"))
    }
}

struct AlertsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "alerts", abstract: "预警", subcommands: [Export.self])

    /// How alerts are exported.
    enum ExportFormat: String, ExpressibleByArgument, CaseIterable {
        /// With a BOM and Chinese headers, for Excel and WPS.
        case csv
        /// One JSON array.
        case json
        /// One JSON object per line.
        case ndjson
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "导出某一期间的预警：每条一行，含规则、严重度、对象、户编号、乡镇和村代码、案件号")
        @Option(help: "期间 YYYY-MM") var period: String
        @Option(help: "csv（带 BOM，可用 Excel/WPS 打开）、json（一个数组）或 ndjson（每行一个对象）") var format: ExportFormat = .csv
        @Flag(help: "显示完整身份证号（默认按前 6 后 4 位遮蔽）") var unmasked = false
        @OptionGroup var store: StoreOptions
        func run() throws {
            let p = try parsePeriod(period)
            let db = try openStore(store.db)
            let count = try db.alertCount(period: p.description)
            try db.audit(NSUserName(), "导出预警", target: p.description, detail: "命令行，\(count) 条\(unmasked ? "，完整身份证号" : "")", address: "local")
            let cols = ["rule", "title", "severity", "subject_kind", "subject_id", "household_id", "township_code", "village_code", "case_id", "message", "raised_at"]
            func shown(_ r: [String: String], _ c: String) -> String {
                let v = r[c] ?? ""
                if unmasked { return v }
                if c == "subject_id" && r["subject_kind"] == "person" { return ResidentID.mask(v) }
                return c == "message" ? ResidentID.maskEmbedded(v) : v
            }
            // Streamed: one row at a time, written out in 64 KB pieces.
            var out: String
            switch format {
            case .csv: out = "\u{FEFF}" + ["规则", "名称", "严重度", "对象类型", "对象", "户编号", "乡镇代码", "村代码", "案件号", "说明", "预警时间"].joined(separator: ",") + "\r\n"
            case .json: out = "["
            case .ndjson: out = ""
            }
            var first = true
            func flush(_ force: Bool) {
                guard force || out.utf8.count >= 1 << 16 else { return }
                FileHandle.standardOutput.write(Data(out.utf8))
                out = ""
            }
            try db.forEachAlert(period: p.description) { a in
                let r = ["rule": a.rule, "title": a.title, "severity": a.severity, "subject_kind": a.subjectKind, "subject_id": a.subjectID,
                         "household_id": a.householdID ?? "", "township_code": a.townshipCode ?? "", "village_code": a.villageCode ?? "",
                         "case_id": String(a.caseID), "message": a.message, "raised_at": a.raisedAt]
                if format == .csv {
                    out += cols.map { CSVText.cell(shown(r, $0)) }.joined(separator: ",") + "\r\n"
                } else {
                    var o: [String: String] = [:]
                    for c in cols { o[c] = shown(r, c) }
                    let object = String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
                    out += format == .json ? (first ? "\n" : ",\n") + object : object + "\n"
                }
                first = false
                flush(false)
            }
            if format == .json { out += first ? "]\n" : "\n]\n" }
            flush(true)
        }
    }
}
