import ArgumentParser
import Foundation
import Hub
import HubSQLite
import HubWeb
import Connectors
import Hummingbird
import Logging
import ServiceLifecycle
import UnixSignals

/// Settings of `hubd serve`, from `hub.yaml` (see `deploy/hub.yaml`, every key commented).
struct HubConfig {
    var database = "var/hub.sqlite"
    var mappings = "Mappings"
    var host = "127.0.0.1"
    var port = 8080
    var secureCookies = false
    var trustedProxies: [String] = ["127.0.0.1", "::1"]
    /// The environment variable holding the token `/metrics` asks for (none: open).
    var metricsTokenEnv: String?
    var deadlineDays = 15
    var checkEvery = 30
    var utcOffsetHours = 8
    var backoff = Backoff()
    /// A feed not delivered yet is looked for again this often (minutes) until its due day plus the grace days.
    var waitingMinutes = 60
    var lateGraceDays = 1
    var logLevel: Logger.Level = .info
    var notifications: NotificationSettings?
    /// `archive:` — where raw documents are kept and for how long (default: beside the database, 13 months).
    var archiveFolder: String?
    var archiveEnabled = true
    var retentionMonths = 13
    /// `backup:` — scheduled online backups.
    var backups: BackupSettings?
    var archive: DocumentArchive? {
        guard archiveEnabled else { return nil }
        return DocumentArchive(folder: URL(fileURLWithPath: archiveFolder ?? StoreOptions.defaultArchive(forDatabase: database)),
                               retentionMonths: retentionMonths)
    }

    static func load(_ path: String) throws -> HubConfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("无法读取配置文件 \(path)") }
        let root: ConfigNode
        do { root = try ConfigNode.parse(text, file: path) } catch { throw report(error) }
        let r = ConfigReader()
        var c = HubConfig()
        let top = r.mapping(root, what: "配置文件", allowed: ["database", "mappings", "web", "cases", "scheduler", "retry", "log_level", "notifications", "archive", "backup"])
        c.database = r.string(top["database"]?.0, what: "database") ?? c.database
        c.mappings = r.string(top["mappings"]?.0, what: "mappings") ?? c.mappings
        if let (n, _) = top["web"] {
            let m = r.mapping(n, what: "web", allowed: ["host", "port", "secure_cookies", "metrics_token_env", "trusted_proxies"])
            c.trustedProxies = r.strings(m["trusted_proxies"]?.0, what: "web.trusted_proxies") ?? c.trustedProxies
            c.metricsTokenEnv = r.string(m["metrics_token_env"]?.0, what: "web.metrics_token_env")
            c.host = r.string(m["host"]?.0, what: "web.host") ?? c.host
            c.port = r.int(m["port"]?.0, what: "web.port", range: 1...65535) ?? c.port
            c.secureCookies = r.bool(m["secure_cookies"]?.0, what: "web.secure_cookies") ?? c.secureCookies
        }
        if let (n, _) = top["archive"] {
            let m = r.mapping(n, what: "archive", allowed: ["enabled", "folder", "retention_months"])
            c.archiveEnabled = r.bool(m["enabled"]?.0, what: "archive.enabled") ?? c.archiveEnabled
            c.archiveFolder = r.string(m["folder"]?.0, what: "archive.folder")
            c.retentionMonths = r.int(m["retention_months"]?.0, what: "archive.retention_months", range: 0...1200) ?? c.retentionMonths
        }
        if let (n, _) = top["cases"] {
            let m = r.mapping(n, what: "cases", allowed: ["deadline_days"])
            c.deadlineDays = r.int(m["deadline_days"]?.0, what: "cases.deadline_days", range: 1...365) ?? c.deadlineDays
        }
        if let (n, _) = top["scheduler"] {
            let m = r.mapping(n, what: "scheduler", allowed: ["check_every_seconds", "utc_offset_hours", "not_delivered_every_minutes", "late_grace_days"])
            c.waitingMinutes = r.int(m["not_delivered_every_minutes"]?.0, what: "scheduler.not_delivered_every_minutes", range: 1...1440) ?? c.waitingMinutes
            c.lateGraceDays = r.int(m["late_grace_days"]?.0, what: "scheduler.late_grace_days", range: 0...31) ?? c.lateGraceDays
            c.checkEvery = r.int(m["check_every_seconds"]?.0, what: "scheduler.check_every_seconds", range: 1...3600) ?? c.checkEvery
            c.utcOffsetHours = r.int(m["utc_offset_hours"]?.0, what: "scheduler.utc_offset_hours", range: -12...14) ?? c.utcOffsetHours
        }
        if let (n, _) = top["retry"] {
            let m = r.mapping(n, what: "retry", allowed: ["base_seconds", "max_seconds", "max_attempts", "max_total_minutes"])
            c.backoff.base = Double(r.int(m["base_seconds"]?.0, what: "retry.base_seconds", range: 1...86400) ?? Int(c.backoff.base))
            c.backoff.cap = Double(r.int(m["max_seconds"]?.0, what: "retry.max_seconds", range: 1...86400) ?? Int(c.backoff.cap))
            c.backoff.maxAttempts = r.int(m["max_attempts"]?.0, what: "retry.max_attempts", range: 1...100) ?? c.backoff.maxAttempts
            c.backoff.maxTotal = Double(r.int(m["max_total_minutes"]?.0, what: "retry.max_total_minutes", range: 1...100_000).map { $0 * 60 } ?? Int(c.backoff.maxTotal))
        }
        if let (n, _) = top["backup"] {
            let m = r.mapping(n, what: "backup", allowed: ["schedule", "folder", "keep"])
            let text = r.string(m["schedule"]?.0, what: "backup.schedule") ?? "daily at 01:30"
            let folder = r.string(m["folder"]?.0, what: "backup.folder")
            if folder == nil { r.error(n.location, "backup 须写 folder（备份放在哪个目录；最好在另一块盘上）") }
            let keep = r.int(m["keep"]?.0, what: "backup.keep", range: 1...1000) ?? 7
            do {
                let schedule = try Schedule(text, utcOffset: c.utcOffsetHours * 3600)
                if let folder { c.backups = BackupSettings(schedule: schedule, folder: URL(fileURLWithPath: folder), keep: keep) }
            } catch { r.error(m["schedule"]?.1 ?? n.location, "backup.schedule：\(error)") }
        }
        if let (n, _) = top["notifications"] { c.notifications = Self.notifications(n, r, utcOffsetHours: c.utcOffsetHours) }
        if let l = r.oneOf(top["log_level"]?.0, what: "log_level", ["trace", "debug", "info", "notice", "warning", "error", "critical"]) {
            c.logLevel = Logger.Level(rawValue: l) ?? .info
        }
        if !r.diagnostics.isEmpty { throw report(DiagnosticList(r.diagnostics)) }
        return c
    }
}

extension HubConfig {
    /// `notifications:` — when digests go out, the inbox's address for links, and the receivers.
    static func notifications(_ node: ConfigNode, _ r: ConfigReader, utcOffsetHours: Int) -> NotificationSettings? {
        let m = r.mapping(node, what: "notifications", allowed: ["schedule", "base_url", "receivers"])
        let scheduleText = r.string(m["schedule"]?.0, what: "notifications.schedule") ?? "daily at 08:00"
        let schedule: Schedule
        do { schedule = try Schedule(scheduleText, utcOffset: utcOffsetHours * 3600) } catch {
            r.error(m["schedule"]?.1 ?? node.location, "notifications.schedule：\(error)")
            return nil
        }
        guard let base = r.requiredString(m, "base_url", in: node, what: "notifications") else { return nil }
        var receivers: [NotificationReceiver] = []
        for (i, item) in (m["receivers"]?.0.items ?? []).enumerated() {
            let what = "notifications.receivers[\(i)]"
            let f = r.mapping(item, what: what, allowed: ["name", "kind", "townships", "url_env", "secret_env", "smtp_url", "from", "to", "user_env", "password_env"])
            guard let kindText = r.oneOf(f["kind"]?.0, what: what + ".kind", NotificationReceiver.Kind.allCases.map(\.rawValue)),
                  let kind = NotificationReceiver.Kind(rawValue: kindText) else {
                if f["kind"] == nil { r.error(item.location, "\(what) 须写 kind（webhook、wecom、dingtalk、email）") }
                continue
            }
            var rc = NotificationReceiver(name: r.string(f["name"]?.0, what: what + ".name") ?? "\(kindText)-\(i + 1)", kind: kind)
            rc.townships = r.strings(f["townships"]?.0, what: what + ".townships") ?? []
            rc.urlEnv = r.string(f["url_env"]?.0, what: what + ".url_env")
            rc.secretEnv = r.string(f["secret_env"]?.0, what: what + ".secret_env")
            rc.smtpURL = r.string(f["smtp_url"]?.0, what: what + ".smtp_url")
            rc.from = r.string(f["from"]?.0, what: what + ".from")
            rc.to = r.strings(f["to"]?.0, what: what + ".to") ?? []
            rc.userEnv = r.string(f["user_env"]?.0, what: what + ".user_env")
            rc.passwordEnv = r.string(f["password_env"]?.0, what: what + ".password_env")
            if kind == .email, rc.smtpURL == nil || rc.from == nil || rc.to.isEmpty { r.error(item.location, "\(what)：email 须写 smtp_url、from、to") }
            if kind != .email, rc.urlEnv == nil { r.error(item.location, "\(what)：\(kindText) 须写 url_env（保存地址的环境变量名；地址里含密钥，不写进文件）") }
            receivers.append(rc)
        }
        if receivers.isEmpty { r.error(node.location, "notifications 须至少有一个 receivers") }
        return NotificationSettings(schedule: schedule, baseURL: base, receivers: receivers)
    }
}

/// Runs the scheduler on its own thread so blocking pulls never stall the web server.
struct SchedulerService: Service {
    let daemon: Daemon
    let every: Int

    func run() async throws {
        let daemon = self.daemon
        try await withGracefulShutdownHandler {
            while !daemon.cancellation.isSet {
                await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                    Thread.detachNewThread {
                        do { try daemon.tick() } catch { daemon.logger.error("调度出错", metadata: ["error": "\(error)"]) }
                        done.resume()
                    }
                }
                var waited = 0
                while waited < every * 10 && !daemon.cancellation.isSet {
                    try? await Task.sleep(nanoseconds: 100_000_000)
                    waited += 1
                }
            }
            daemon.logger.info("调度已停止")
        } onGracefulShutdown: {
            // A pull in flight stops at its next row and rolls back; the next start pulls it again.
            daemon.cancellation.set()
        }
    }
}

/// Reloads mappings, types and rules: on SIGHUP at once, and when their files change (looked
/// at every `every` seconds). Stops on graceful shutdown. The daemon keeps the last good
/// version of each file; the web reads the daemon's current set on every request.
struct ReloadService: Service {
    let daemon: Daemon
    let every: Int
    let logger: Logger

    func run() async throws {
        let daemon = self.daemon, logger = self.logger, every = max(1, every)
        let signals = await UnixSignalsSequence(trapping: .sighup)
        // Graceful shutdown cancels both loops.
        try await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await _ in signals {
                        logger.info("收到 SIGHUP，重新加载映射和规则")
                        _ = await BlockingReload.run { daemon.reload(force: true) }
                    }
                }
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(every))
                        if Task.isCancelled { break }
                        _ = await BlockingReload.run { daemon.reload() }
                    }
                }
                await group.next()
                group.cancelAll()
            }
        }
    }
}

/// Reading and parsing files is blocking work: it runs on its own thread, not Swift's cooperative pool.
enum BlockingReload {
    static func run<T: Sendable>(_ body: @Sendable @escaping () -> T) async -> T {
        await withCheckedContinuation { (done: CheckedContinuation<T, Never>) in
            Thread.detachNewThread { done.resume(returning: body()) }
        }
    }
}

/// `hubd serve`: the scheduler, the pulls, rule evaluation, and the web inbox and API in one
/// process. SIGTERM or SIGINT stops taking work, rolls back a pull in flight and exits;
/// SIGHUP reloads mappings and rules.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "常驻服务：按计划拉取各部门数据、评估规则，并提供网页（乡镇收件箱等）和 JSON API")
    @Option(help: "配置文件（见 deploy/hub.yaml）") var config: String?
    @Option(help: "监听地址（覆盖配置文件）") var host: String?
    @Option(help: "端口（覆盖配置文件）") var port: Int?
    @Option(help: "监测库（覆盖配置文件）") var db: String?
    @Option(help: "映射目录（覆盖配置文件）") var mappings: String?
    @Flag(help: "不运行调度（只提供网页）") var noScheduler = false

    func run() async throws {
        var c = try config.map(HubConfig.load) ?? HubConfig()
        if let host { c.host = host }
        if let port { c.port = port }
        if let db { c.database = db }
        if let mappings { c.mappings = mappings }
        var opts = try StoreOptions.parse(["--db", c.database, "--mappings", c.mappings])
        opts.verbose = true
        opts.bootstrapLogging(level: c.logLevel)
        let logger = Logger(label: "hubd")
        let store = try openStore(c.database)
        let interrupted = try store.markInterruptedRuns()
        if interrupted > 0 { logger.warning("上次停止时有拉取未完成，已标记为中断（已回滚，将重新拉取）", metadata: ["runs": "\(interrupted)"]) }
        var settings = Daemon.Settings()
        settings.backoff = c.backoff
        settings.utcOffset = c.utcOffsetHours * 3600
        settings.waitingInterval = Double(c.waitingMinutes * 60)
        settings.lateGraceDays = c.lateGraceDays
        let daemon = Daemon(store: store, mappingsDirectory: URL(fileURLWithPath: c.mappings), connectors: BuiltinConnectors.registry,
                            settings: settings, logger: Logger(label: "hub.daemon"))
        daemon.archive = c.archive
        if let b = c.backups {
            guard let sqlite = store as? SQLiteStore else { throw ValidationError("backup: 只用于 SQLite 监测库") }
            daemon.backups = b
            daemon.takeBackup = { try sqlite.backup(to: $0) }
        }
        daemon.reload(force: true)
        if let n = c.notifications {
            daemon.notifier = Notifier(settings: n, store: store, transport: CurlNotificationTransport())
            logger.info("预警通知已配置", metadata: ["schedule": "\(n.schedule)", "receivers": "\(n.receivers.count)"])
        }
        var web = WebConfiguration()
        web.deadlineDays = c.deadlineDays
        web.secureCookies = c.secureCookies
        web.trustedProxies = Set(c.trustedProxies)
        if let env = c.metricsTokenEnv {
            guard let token = ProcessInfo.processInfo.environment[env], token.count >= 16 else {
                throw ValidationError("web.metrics_token_env 指定的环境变量 \(env) 未设置或太短（至少 16 个字符）")
            }
            web.metricsToken = token
        }
        web.mappingsDirectory = c.mappings
        web.catalog = { daemon.types }
        web.connectors = BuiltinConnectors.registry
        web.ready = { !daemon.mappings.isEmpty }
        web.refused = { daemon.problems.values.flatMap { $0.map(\.description) } }
        web.cannotFire = { daemon.loaded.cannotFire }
        let archive = c.archive
        web.lastReplay = { archive.flatMap { ReplayReport.last(in: $0) } }
        if try store.users().isEmpty {
            logger.notice("还没有用户：先用 hubd users add 管理员用户名 --role admin 创建一个")
        }
        let app = Application(router: WebApp(store: store, config: web).router(),
                              configuration: .init(address: .hostname(c.host, port: c.port), serverName: "hubd"),
                              logger: Logger(label: "hub.web"))
        var services: [any Service] = [app, ReloadService(daemon: daemon, every: c.checkEvery, logger: logger)]
        if !noScheduler { services.append(SchedulerService(daemon: daemon, every: c.checkEvery)) }
        logger.info("hubd 已启动", metadata: ["web": "http://\(c.host):\(c.port)/", "database": "\(c.database)", "mappings": "\(daemon.mappings.count)",
                                          "archive": "\(c.archive?.folder.path ?? "off")"])
        let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) },
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        logger.info("hubd 已停止")
    }
}

struct UsersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "users", abstract: "用户管理",
                                                    subcommands: [Add.self, List.self, Disable.self, Enable.self, Unlock.self, ResetPassword.self])

    /// The new password, from the named environment variable or standard input (never the command line).
    static func readPassword(_ env: String?, prompt: String) throws -> String {
        if let env {
            guard let p = ProcessInfo.processInfo.environment[env], !p.isEmpty else { throw ValidationError("环境变量 \(env) 未设置") }
            return p
        }
        FileHandle.standardError.write(Data(prompt.utf8))
        return readLine(strippingNewline: true) ?? ""
    }

    /// One change to an existing account, audited as the command line's.
    static func change(_ store: StoreOptions, _ username: String, _ change: AccountChange, _ what: String) throws {
        let db = try openStore(store.db)
        do { try db.changeAccount(username: username, change) } catch let e as AccessError { throw ValidationError(e.description) }
        try db.audit("（命令行）", what + "账户", target: username, detail: "", address: "local")
        print("已\(what)：\(username)")
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "停用用户（立即退出其所有会话）")
        @Argument(help: "用户名") var username: String
        @OptionGroup var store: StoreOptions
        func run() throws { try UsersCommand.change(store, username, .disable, "停用") }
    }

    struct Enable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "重新启用已停用的用户")
        @Argument(help: "用户名") var username: String
        @OptionGroup var store: StoreOptions
        func run() throws { try UsersCommand.change(store, username, .enable, "启用") }
    }

    struct Unlock: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "解除因密码错误次数过多造成的锁定")
        @Argument(help: "用户名") var username: String
        @OptionGroup var store: StoreOptions
        func run() throws { try UsersCommand.change(store, username, .unlock, "解锁") }
    }

    struct ResetPassword: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "reset-password", abstract: "重置密码（立即退出其所有会话）。新密码从环境变量或标准输入读取。")
        @Argument(help: "用户名") var username: String
        @Option(help: "保存新密码的环境变量名") var passwordEnv: String?
        @OptionGroup var store: StoreOptions
        func run() throws {
            let password = try UsersCommand.readPassword(passwordEnv, prompt: "请输入新密码（至少 10 位），回车结束：")
            let db = try openStore(store.db)
            do { try db.resetPassword(username: username, password: password) } catch let e as AccessError { throw ValidationError(e.description) }
            try db.audit("（命令行）", "重置密码账户", target: username, detail: "", address: "local")
            print("已重置密码：\(username)")
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "新增用户。密码从环境变量（--password-env）或标准输入读取，不出现在命令行里。")
        @Argument(help: "用户名") var username: String
        @Option(help: "姓名") var name: String?
        @Option(help: "角色：admin、operator、analyst、verifier") var role: String
        @Option(parsing: .upToNextOption, help: "辖区代码：乡镇 9 位或县（市、区）6 位，可多个；核查员必填，分析员可选（只看这些县或乡镇）") var township: [String] = []
        @Option(help: "保存初始密码的环境变量名") var passwordEnv: String?
        @OptionGroup var store: StoreOptions

        func run() throws {
            guard let r = Role(rawValue: role) else { throw ValidationError("角色应为 admin、operator、analyst 或 verifier") }
            var password = try UsersCommand.readPassword(passwordEnv, prompt: "请输入初始密码（至少 10 位），回车结束：")
            let db = try openStore(store.db)
            do {
                // Township codes are checked against the county's once a roster has been pulled.
                let known = Set(try db.regionNames().keys.filter { $0.count == 9 })
                let u = try db.addUser(username: username, displayName: name ?? username, role: r, townships: township, password: password,
                                       knownTownships: known)
                try db.audit("（命令行）", "新增用户", target: u.username, detail: "\(r.rawValue) \(township.joined(separator: ","))", address: "local")
                print("已新增用户 \(u.username)（\(r.chinese)\(township.isEmpty ? "" : "，辖区 " + township.joined(separator: "、"))）")
            } catch let e as AccessError {
                throw ValidationError(e.description)
            }
            password = ""
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "列出用户")
        @OptionGroup var store: StoreOptions
        func run() throws {
            let now = AccessPolicy.utcStamp(Date())
            for a in try openStore(store.db).accounts() {
                let state = !a.active ? "已停用" : (a.lockedUntil.map { $0 > now } ?? false) ? "已锁定" : "正常"
                print([a.user.username, a.user.displayName, a.user.role.chinese, a.user.townships.joined(separator: ","), state].joined(separator: "\t"))
            }
        }
    }
}

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit", abstract: "审计日志", subcommands: [Verify.self])
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "校验审计日志的哈希链：任何一条被改动或删除都会被发现")
        @Option(parsing: .upToNextOption, help: "锚点文件：hubd serve 每天写入日志的 audit_head 行（journalctl 导出的文本或日志文件），或备份清单 *.manifest.json；可多个。用来发现最新的条目被删除（截断）") var anchor: [String] = []
        @OptionGroup var store: StoreOptions
        func run() throws {
            let db = try openStore(store.db)
            if let id = try db.verifyAuditLog() {
                printErr("审计日志从第 \(id) 条起不连续：该条或其前一条被改动或删除")
                throw ExitCode(1)
            }
            var anchors: [BackupManifest.AuditHead] = []
            for f in anchor {
                guard let text = try? String(contentsOfFile: f, encoding: .utf8) else { throw ValidationError("无法读取锚点文件 \(f)") }
                let found = AuditAnchors.parse(text)
                if found.isEmpty { throw ValidationError("\(f) 里没有审计链头（audit_head=编号:哈希，或备份清单的 auditHead）") }
                anchors += found
            }
            let problems = try AuditAnchors.check(anchors, in: db)
            if !problems.isEmpty {
                for p in problems { printErr(p) }
                throw ExitCode(1)
            }
            print("审计日志完整" + (anchors.isEmpty ? "（未给锚点：只能发现改动，发现不了最新条目被删除，见 README“备份与恢复”）" : "，\(anchors.count) 个锚点都在（最新 #\(anchors.map(\.id).max()!)）"))
        }
    }
}

/// `hubd notify`: shows or sends the digest of new and overdue cases now, with the receivers of
/// hub.yaml — to try a robot or a mailbox before relying on the schedule.
struct NotifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "notify",
        abstract: "按 hub.yaml 的 notifications 立即生成（--dry-run 只显示）并发送新增和逾期案件的通知：只有数字和链接，没有个人信息")
    @Option(help: "配置文件（须有 notifications）") var config: String
    @Option(help: "监测库（覆盖配置文件）") var db: String?
    @Flag(help: "只显示要发送的内容，不发送") var dryRun = false

    func run() throws {
        let c = try HubConfig.load(config)
        guard let settings = c.notifications else { throw ValidationError("\(config) 里没有 notifications") }
        let store = try openStore(db ?? c.database)
        let notifier = Notifier(settings: settings, store: store, transport: CurlNotificationTransport(), backoff: Backoff(base: 5, cap: 30, maxAttempts: 3, maxTotal: 60))
        let slot = Date()
        let digests = try notifier.digests(slot: slot)
        if digests.isEmpty { print("自上次通知以来没有新增或逾期的案件，不发送。") }
        for d in digests {
            print("→ \(d.receiver.name)（\(d.receiver.kind.rawValue)）：\(d.title)")
            for l in d.lines { print("    " + l) }
        }
        if !dryRun && !digests.isEmpty {
            try notifier.send(slot: slot)
            print("已发送（结果见审计日志：\(Notifier.sentAction) / \(Notifier.failedAction)）")
        }
    }
}
