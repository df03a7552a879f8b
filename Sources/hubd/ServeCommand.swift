import ArgumentParser
import Foundation
import Hub
import HubWeb
import Connectors
import Hummingbird
import Logging

/// `hubd serve`: the web inbox, the county's pages and the JSON API.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "启动网页（乡镇预警收件箱、全县概况、数据来源页）和 JSON API")
    @Option(help: "监听地址") var host: String = "127.0.0.1"
    @Option(help: "端口") var port: Int = 8080
    @Option(help: "案件办理期限（天）") var deadlineDays: Int = 15
    @Flag(help: "Cookie 加 Secure 标志（经 HTTPS 提供服务时打开）") var secureCookies = false
    @OptionGroup var store: StoreOptions

    func run() async throws {
        store.bootstrapLogging()
        let db = try SQLiteStore(path: store.db)
        var config = WebConfiguration()
        config.deadlineDays = deadlineDays
        config.secureCookies = secureCookies
        config.mappingsDirectory = store.mappings
        do { config.types = try store.loadTypes() } catch { throw report(error as! DiagnosticList) }
        config.connectors = BuiltinConnectors.registry
        if try db.users().isEmpty {
            printErr("提示：还没有用户。先用 hubd users add 管理员用户名 --role admin 创建一个。")
        }
        let app = Application(router: WebApp(store: db, config: config).router(),
                              configuration: .init(address: .hostname(host, port: port), serverName: "hubd"),
                              logger: Logger(label: "hub.web"))
        print("网页：http://\(host):\(port)/　监测库：\(store.db)")
        try await app.runService()
    }
}

struct UsersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "users", abstract: "用户管理", subcommands: [Add.self, List.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "新增用户。密码从环境变量（--password-env）或标准输入读取，不出现在命令行里。")
        @Argument(help: "用户名") var username: String
        @Option(help: "姓名") var name: String?
        @Option(help: "角色：admin、operator、analyst、verifier") var role: String
        @Option(parsing: .upToNextOption, help: "乡镇代码（9 位），核查员必填，可多个") var township: [String] = []
        @Option(help: "保存初始密码的环境变量名") var passwordEnv: String?
        @OptionGroup var store: StoreOptions

        func run() throws {
            guard let r = Role(rawValue: role) else { throw ValidationError("角色应为 admin、operator、analyst 或 verifier") }
            var password: String
            if let passwordEnv {
                guard let p = ProcessInfo.processInfo.environment[passwordEnv], !p.isEmpty else { throw ValidationError("环境变量 \(passwordEnv) 未设置") }
                password = p
            } else {
                FileHandle.standardError.write(Data("请输入初始密码（至少 10 位），回车结束：".utf8))
                password = readLine(strippingNewline: true) ?? ""
            }
            let db = try SQLiteStore(path: store.db)
            do {
                let u = try db.addUser(username: username, displayName: name ?? username, role: r, townships: township, password: password)
                try db.audit("（命令行）", "新增用户", target: u.username, detail: "\(r.rawValue) \(township.joined(separator: ","))", address: "local")
                print("已新增用户 \(u.username)（\(r.chinese)\(township.isEmpty ? "" : "，乡镇 " + township.joined(separator: "、"))）")
            } catch let e as SQLiteStore.AccessError {
                throw ValidationError(e.description)
            }
            password = ""
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "列出用户")
        @OptionGroup var store: StoreOptions
        func run() throws {
            for u in try SQLiteStore(path: store.db).users() {
                print([u.username, u.displayName, u.role.chinese, u.townships.joined(separator: ",")].joined(separator: "\t"))
            }
        }
    }
}

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit", abstract: "审计日志", subcommands: [Verify.self])
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "校验审计日志的哈希链：任何一条被改动或删除都会被发现")
        @OptionGroup var store: StoreOptions
        func run() throws {
            if let id = try SQLiteStore(path: store.db).verifyAuditLog() {
                printErr("审计日志从第 \(id) 条起不连续：该条或其前一条被改动或删除")
                throw ExitCode(1)
            }
            print("审计日志完整")
        }
    }
}
