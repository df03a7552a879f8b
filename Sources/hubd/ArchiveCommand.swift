import ArgumentParser
import Foundation
import Hub
import HubSQLite
import Connectors

/// `hubd archive`: what the archive of raw documents holds, per run or month, and pruning it.
struct ArchiveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "archive",
        abstract: "原始文件归档：列出每次拉取读到的文件（list）、删除超过保留期的月份（prune）",
        subcommands: [List.self, Prune.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "列出拉取读到的原始文件及其归档；不加选项时按来源和月份汇总")
        @Option(name: .customLong("run"), help: "只看这次运行（编号见 hubd runs）") var runID: Int64?
        @Option(help: "只看这个期间 YYYY-MM 最新一次成功拉取的文件") var period: String?
        @Option(help: "只看这个来源") var source: String?
        @OptionGroup var store: StoreOptions

        func run() throws {
            guard let archive = store.documentArchive() else { throw ValidationError("未启用归档（--no-archive）") }
            let db = try openStore(store.db)
            var runIDs: [Int64] = []
            if let runID { runIDs = [runID] } else if let period {
                let p = try parsePeriod(period)
                let all = try db.runs(source: nil, limit: 10_000).map(\.source)
                let sources = source.map { [$0] } ?? Array(Set(all)).sorted()
                runIDs = try sources.compactMap { try db.lastSuccessfulRun(source: $0, period: p) }
            }
            if runIDs.isEmpty {
                let months = archive.months().filter { source == nil || $0.source == source }
                print("归档目录：\(archive.folder.path)（保留期 \(archive.retentionMonths == 0 ? "不限" : "\(archive.retentionMonths) 个月")）")
                if months.isEmpty { print("（归档为空）") }
                for m in months { print("  \(m.source) \(m.period)：\(m.files) 个文件，压缩后 \(byteCountText(m.bytes))") }
                return
            }
            let runs = Dictionary(try db.runs(source: source, limit: 100_000).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            for id in runIDs {
                guard let r = runs[id] else { print("运行 #\(id)：不存在"); continue }
                print("运行 #\(id) \(r.source) \(r.period)（\(r.status.rawValue)，\(r.startedAt)）：")
                let docs = try db.documents(ofRun: id)
                if docs.isEmpty { print("  （没有记录读到的文件）") }
                for d in docs {
                    let kept = Period(r.period).map { archive.contains(source: r.source, period: $0, fingerprint: d.fingerprint) } ?? false
                    print("  \(d.name)　\(byteCountText(d.bytes))　读取 \(d.read) 行，入库 \(d.stored)，隔离 \(d.quarantined)　指纹 \(d.fingerprint)　\(kept ? "已归档" : "未归档")")
                }
            }
        }
    }

    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "删除超过保留期（--retention-months，默认 13 个月）的月份的原始文件")
        @Flag(help: "只列出将删除的，不删除") var dryRun = false
        @OptionGroup var store: StoreOptions

        func run() throws {
            guard let archive = store.documentArchive() else { throw ValidationError("未启用归档（--no-archive）") }
            let months = dryRun ? archive.expired(today: .today) : try archive.prune(today: .today)
            let bytes = months.reduce(0) { $0 + $1.bytes }, files = months.reduce(0) { $0 + $1.files }
            for m in months { print("  \(m.source) \(m.period)：\(m.files) 个文件，\(byteCountText(m.bytes))") }
            print((dryRun ? "将删除" : "已删除") + " \(months.count) 个来源月份的 \(files) 个文件，共 \(byteCountText(bytes))（保留期 \(archive.retentionMonths) 个月）")
            if !dryRun, !months.isEmpty {
                let db = try openStore(store.db)
                try db.audit(NSUserName(), "删除归档", target: "\(months.count) 个来源月份",
                             detail: "命令行，\(files) 个原始文件，\(bytes) 字节，最新的期间 \(months.map(\.period).max()!.description)", address: "local")
            }
        }
    }
}

/// `hubd replay`: a month through changed mappings or rules, in a scratch copy.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "上线前试算：用改动后的映射（--mappings）或规则（--rules）重读某月归档的原始文件，在临时副本中评估，列出预警差异；不改动监测库")
    @Option(help: "期间 YYYY-MM") var period: String
    @Option(help: "改动后的规则目录（默认：映射目录旁的 rules/）") var rules: String?
    @Option(help: "临时副本放在哪个目录（默认：系统临时目录；需能放下监测库的一个副本）") var scratch: String?
    @Flag(help: "以 JSON 输出差异") var json = false
    @OptionGroup var store: StoreOptions

    func run() throws {
        store.bootstrapLogging()
        let p = try parsePeriod(period)
        guard let archive = store.documentArchive() else { throw ValidationError("重放需要原始文件归档（去掉 --no-archive）") }
        let loader: MappingLoader
        var mappings: [Mapping] = []
        var problems: [Diagnostic] = []
        do { loader = try store.loader() } catch { throw report(error as! DiagnosticList) }
        for url in store.mappingFiles() {
            do { mappings.append(try loader.load(file: url)) } catch { problems += error.items }
        }
        if !problems.isEmpty { throw report(DiagnosticList(problems)) }
        let rulesDir = rules.map { URL(fileURLWithPath: $0) }
        let (types, ruleList, params) = try loadRules(store, strict: true, rulesDirectory: rulesDir)
        guard let live = try openStore(store.db) as? SQLiteStore else { throw ValidationError("重放目前只支持 SQLite 监测库") }
        // The copy holds everything the store does: a folder only this user can enter, removed after.
        let dir = URL(fileURLWithPath: scratch ?? NSTemporaryDirectory())
            .appendingPathComponent("hub-replay-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(at: dir) }
        let copy = dir.appendingPathComponent("scratch.sqlite").path
        try live.copy(to: copy)
        var replay = Replay(live: live, scratch: try SQLiteStore(path: copy), archive: archive, mappings: mappings, types: types,
                            rules: ruleList, params: params)
        replay.mappingsLabel = store.mappings
        replay.rulesLabel = rules ?? MappingsFolder.rules(of: URL(fileURLWithPath: store.mappings)).relativePathForDisplay
        let report = try replay.run(period: p)
        try ReplayReport.save(report, in: archive)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try enc.encode(report), as: UTF8.self))
        } else {
            print(report.text, terminator: "")
            print("用时 \(String(format: "%.1f", report.seconds)) 秒；差异已保存，网页“映射与规则”可见")
        }
    }
}


/// `hubd backup`: an online copy of the store with its manifest; `hubd backup verify`.
struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "在线备份监测库（服务运行、拉取进行时也可以）：一致的副本加清单（时间、库结构版本、各表行数、审计链头、SHA-256）",
        subcommands: [Take.self, Verify.self], defaultSubcommand: Take.self)

    struct Take: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "take", abstract: "备份到一个新文件（不覆盖已有文件），清单写在旁边的 .manifest.json")
        @Option(help: "备份文件") var to: String
        @OptionGroup var store: StoreOptions
        func run() throws {
            guard let db = try openStore(store.db) as? SQLiteStore else { throw ValidationError("这个监测库不是 SQLite 文件：请用数据库自己的备份（见 README）") }
            let m = try db.backup(to: to)
            try db.audit(NSUserName(), "备份", target: to, detail: "命令行，\(m.bytes) 字节，审计链头 #\(m.auditHead?.id ?? 0)", address: "local")
            print("已备份到 \(to)（\(byteCountText(m.bytes))，用时 \(String(format: "%.2f", m.seconds)) 秒），清单 \(BackupManifest.url(forBackup: to).path)")
            print("审计链头 audit_head=\(m.auditHead.map { "\($0.id):\($0.hash)" } ?? "（空）")；库结构 \(m.schema.last ?? "—")")
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "检查备份：完整性、审计日志哈希链、与清单逐项比对（SHA-256、库结构、各表行数、审计链头）；不改动备份")
        @Argument(help: "备份文件") var file: String
        func run() throws {
            let problems = try SQLiteBackup.verify(file)
            if !problems.isEmpty {
                for p in problems { printErr("\(file)：\(p)") }
                throw ExitCode(1)
            }
            let m = try BackupManifest.load(forBackup: file)
            print("备份完好：\(file)，\(m.createdAt) 备份，\(m.tables.values.reduce(0, +)) 行，审计链头 #\(m.auditHead?.id ?? 0)，库结构 \(m.schema.last ?? "—")")
        }
    }
}

/// `hubd retention plan|apply`: department records and raw documents past their retention.
struct RetentionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retention",
        abstract: "按保留期删除部门数据：记录类型文件的 retention 和原始文件归档的保留期；预警和案件保留，证据中的身份证号遮盖",
        subcommands: [Plan.self, Apply.self])

    struct Plan: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "列出今天按保留期将删除的记录和原始文件，不删除")
        @OptionGroup var store: StoreOptions
        func run() throws {
            let plan = try Retention.plan(types: try store.loadTypes(), store: try openStore(store.db), archive: store.documentArchive(), today: .today)
            print(plan.text(applied: false), terminator: "")
        }
    }

    struct Apply: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "删除超过保留期的记录和原始文件（hubd serve 每天自动做），写一条审计日志")
        @OptionGroup var store: StoreOptions
        func run() throws {
            let plan = try Retention.apply(types: try store.loadTypes(), store: try openStore(store.db), archive: store.documentArchive(),
                                           today: .today, by: NSUserName(), address: "local")
            print(plan.text(applied: true), terminator: "")
        }
    }
}
