import ArgumentParser
import Foundation
import Synchronization
import Hub
import HubPostgres
import Connectors
import Logging

@main
struct Hubd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hubd",
        abstract: "防返贫动态监测 部门数据交换中心（hub）",
        discussion: "拉取各部门数据，经映射文件规范化后存入监测库。映射写法见 README 的“映射文件参考”。",
        subcommands: [MappingCommand.self, PullCommand.self, DemoCommand.self, RunsCommand.self, QuarantineCommand.self, RulesCommand.self, AlertsCommand.self, ServeCommand.self, SimulateCommand.self, ArchiveCommand.self, ReplayCommand.self, BackupCommand.self, RetentionCommand.self, UsersCommand.self, NotifyCommand.self, AuditCommand.self, ConnectorsCommand.self]
    )
}

private let loggingBootstrapped = Mutex(false)

/// Options shared by commands that touch the store or the mappings.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "监测库：SQLite 文件，或 postgres://用户@主机:端口/数据库（密码用 PGPASSWORD）") var db: String = "var/hub.sqlite"
    @Option(name: .long, help: "映射文件目录（其下 types/ 为记录类型）") var mappings: String = "Mappings"
    @Option(name: .long, help: "原始文件归档目录（默认：监测库旁的同名 .archive 目录）") var archive: String?
    @Flag(name: .long, help: "不归档拉取读到的原始文件") var noArchive = false
    @Option(name: .long, help: "归档保留的月数（期间之后；0 为一直保留）") var retentionMonths: Int = 13
    @Flag(name: .long, help: "输出详细日志") var verbose = false

    /// Where pulls keep the documents they read: `--archive`, else `var/hub.archive` beside
    /// `var/hub.sqlite`; none with `--no-archive` or an in-memory store.
    func documentArchive() -> DocumentArchive? {
        if noArchive || (archive == nil && (db == ":memory:" || db.isEmpty)) { return nil }
        return DocumentArchive(folder: URL(fileURLWithPath: archive ?? Self.defaultArchive(forDatabase: db)), retentionMonths: retentionMonths)
    }

    /// Beside the SQLite file; for a PostgreSQL store, `var/hub.archive` (workers on several
    /// machines share one folder: set `archive: { folder: … }` to a shared mount).
    static func defaultArchive(forDatabase db: String) -> String {
        if PostgresLocation.isPostgres(db) { return "var/hub.archive" }
        let u = URL(fileURLWithPath: db)
        return u.deletingPathExtension().path + ".archive"
    }

    /// Sets up logging once per process (swift-log allows one bootstrap; commands run in-process
    /// by the tests would otherwise trap on the second).
    func bootstrapLogging(level: Logger.Level? = nil) {
        guard loggingBootstrapped.withLock({ done in defer { done = true }; return !done }) else { return }
        let level: Logger.Level = level ?? (verbose ? .info : .warning)
        let json = isatty(2) == 0
        LoggingSystem.bootstrap { label in
            if json { return JSONLogHandler(label: label, logLevel: level) }
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
    }

    func loadTypes() throws -> TypeCatalog {
        try TypeCatalog.load(directory: MappingsFolder.types(of: URL(fileURLWithPath: mappings)))
    }

    func loader() throws -> MappingLoader {
        MappingLoader(types: try loadTypes(), connectors: BuiltinConnectors.registry)
    }

    func mappingURL(_ source: String) -> URL {
        URL(fileURLWithPath: mappings).appendingPathComponent(source + ".yaml")
    }

    /// Every mapping file in the folder (not types/), sorted.
    func mappingFiles() -> [URL] {
        let dir = URL(fileURLWithPath: mappings)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map { dir.appendingPathComponent($0) }
    }
}

/// Prints diagnostics, one per line, and fails with a non-zero exit code.
func report(_ list: DiagnosticList) -> ExitCode {
    for d in list.items { FileHandle.standardError.write(Data((d.description + "\n").utf8)) }
    return ExitCode(1)
}

func parsePeriod(_ s: String) throws -> Period {
    guard let p = Period(s) else { throw ValidationError("期间应写作 YYYY-MM，如 2026-10，实为 \"\(s)\"") }
    return p
}

func summaryLine(_ r: PullResult) -> String {
    let c = r.counts
    return "\(r.source) \(r.period) 运行 #\(r.runID) 成功：读取 \(c.read) 行，新增 \(c.inserted)，更新 \(c.updated)，未变 \(c.unchanged)，隔离 \(c.quarantined)，跳过 \(c.skipped)（\(String(format: "%.2f", r.seconds)) 秒）"
}

func printErr(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }
