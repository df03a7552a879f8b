import Foundation
import Testing
import Synchronization
import Hub
@testable import HubPostgres
import HubTesting
@testable import hubd
import ArgumentParser

/// A real PostgreSQL server for the tests: the one `scripts/test.sh` started (HUB_PG_URL and
/// PGPASSWORD in the environment), else a throwaway cluster this process starts with
/// `scripts/pg-cluster.sh` and stops when it exits. Each store gets a schema of its own.
enum PostgresTestServer {
    struct Server: Sendable { var url: String; var password: String }

    static let server: Server? = {
        let env = ProcessInfo.processInfo.environment
        if let url = env["HUB_PG_URL"], let password = env["PGPASSWORD"] { return Server(url: url, password: password) }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let dir = "/tmp/hub-pg-test-\(getpid())"
        let script = root.appendingPathComponent("scripts/pg-cluster.sh").path
        // posix_spawn and waitpid, not Process: Foundation's Process never saw the script end
        // when started from this lazy static (inside swift-testing's trait evaluation).
        guard run("/bin/bash", ["-c", "'\(script)' start '\(dir)' > '\(dir).env' 2> '\(dir).err'"]) == 0,
              let text = try? String(contentsOfFile: dir + ".env", encoding: .utf8) else { return nil }
        unlink(dir + ".env"); unlink(dir + ".err")
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { values[parts[0]] = parts[1] }
        }
        guard let url = values["HUB_PG_URL"], let password = values["PGPASSWORD"] else { return nil }
        stopScript = (script, dir)
        atexit {
            guard let (script, dir) = PostgresTestServer.stopScript else { return }
            _ = PostgresTestServer.run("/bin/bash", [script, "stop", dir])
        }
        return Server(url: url, password: password)
    }()
    nonisolated(unsafe) static var stopScript: (String, String)?

    /// Runs a program to its end; its exit status.
    static func run(_ path: String, _ arguments: [String]) -> Int32 {
        var pid: pid_t = 0
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        guard posix_spawn(&pid, path, nil, nil, argv, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        return (status >> 8) & 0xFF
    }

    /// Whether the tests can reach a server; `HUB_REQUIRE_POSTGRES=1` (the test command sets
    /// it) turns a missing server into a failure instead of skipped tests.
    static var available: Bool { server != nil || ProcessInfo.processInfo.environment["HUB_REQUIRE_POSTGRES"] == "1" }

    static let counter = Atomic<Int>(0)

    /// The address of a new, empty schema on the test server.
    static func freshURL(_ label: String = "t") throws -> String {
        guard let s = server else { throw StoreError("没有可用的 PostgreSQL 测试服务器（安装 postgresql，或设置 HUB_PG_URL 与 PGPASSWORD）") }
        setenv("PGPASSWORD", s.password, 1)
        let n = counter.add(1, ordering: .relaxed).newValue
        return s.url + (s.url.contains("?") ? "&" : "?") + "schema=\(label)_\(getpid())_\(n)"
    }

    static func store(_ label: String = "t") throws -> PostgresStore {
        try PostgresStore(url: freshURL(label))
    }
}

@Suite(.enabled(if: PostgresTestServer.available, "no PostgreSQL server: install Debian's postgresql (scripts/setup.sh --postgres)"))
struct PostgresStoreTests {
    @Test func thePostgreSQLStorePassesEveryCheck() {
        let failures = StoreConformance(makeStore: { try PostgresTestServer.store("conf") }).run()
        #expect(failures.isEmpty, "\(failures.map(\.description).joined(separator: "\n"))")
    }
}

extension CommandLineTests {
    /// What a store holds of one month's alerts and cases, in an order that does not depend on ids or clocks.
    static func outcome(of store: any HubStore, period: String) throws -> (alerts: [String], cases: [String]) {
        var alerts: [String] = []
        try store.forEachAlert(period: period) { a in
            alerts.append([a.rule, a.title, a.severity, a.subjectKind, a.subjectID, a.householdID ?? "", a.townshipCode ?? "",
                           a.villageCode ?? "", a.message].joined(separator: "|"))
        }
        let analyst = User(id: 0, username: "analyst", displayName: "县级分析员", role: .analyst, townships: [])
        var cases: [String] = []
        var filter = CaseFilter()
        filter.limit = CaseFilter.maxLimit
        while true {
            let page = try store.cases(for: analyst, filter: filter, today: CivilDate(year: 2026, month: 11, day: 15)!)
            for c in page {
                cases.append([c.period, c.subjectKind.rawValue, c.subjectID, c.householdID ?? "", c.townshipCode ?? "", c.villageCode ?? "",
                              c.township ?? "", c.village ?? "", c.severity.rawValue, c.status.rawValue, c.deadline, c.rules.joined(separator: ","),
                              c.titles.joined(separator: ","), c.subjectName ?? ""].joined(separator: "|"))
            }
            if page.count < filter.limit { break }
            filter.offset += page.count
        }
        return (alerts.sorted(), cases.sorted())
    }

    @Test(.enabled(if: PostgresTestServer.available, "no PostgreSQL server"))
    func theDemoOnPostgreSQLGivesTheSameAlertsAndCasesAsOnSQLite() throws {
        let dir = scratchDirectory("demo-both")
        let sqlitePath = dir.appendingPathComponent("hub.sqlite").path
        let postgres = try PostgresTestServer.freshURL("demo")
        for db in [sqlitePath, postgres] {
            var demo = try DemoCommand.parse(["--scale", "0.03", "--sim-dir", dir.appendingPathComponent("sim").path, "--db", db, "--no-archive"])
            _ = try capturingStandardOutput { try demo.run() }
        }
        let a = try Self.outcome(of: openStore(sqlitePath), period: "2026-10")
        let b = try Self.outcome(of: openStore(postgres), period: "2026-10")
        #expect(a.alerts.count >= 13, "the demo raises alerts of every family")
        #expect(a.cases.count >= 13)
        #expect(a.alerts == b.alerts, "alerts differ: only SQLite \(Set(a.alerts).subtracting(b.alerts).prefix(3)), only PostgreSQL \(Set(b.alerts).subtracting(a.alerts).prefix(3))")
        #expect(a.cases == b.cases, "cases differ: only SQLite \(Set(a.cases).subtracting(b.cases).prefix(3)), only PostgreSQL \(Set(b.cases).subtracting(a.cases).prefix(3))")
    }
}
