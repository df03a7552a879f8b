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

/// The address of a PostgreSQL store, and where its password comes from (no server needed).
@Suite struct PostgresLocationTests {
    @Test func anAddressNamesServerDatabaseAndOptionsButNeverAPassword() throws {
        let l = try PostgresLocation(url: "postgres://hub@db.example:6432/monitor?sslmode=require&schema=city&pool=4&password_env=HUB_DB_PASSWORD")
        #expect(l.host == "db.example" && l.port == 6432 && l.user == "hub" && l.database == "monitor")
        #expect(l.tls == .require && l.schema == "city" && l.poolSize == 4 && l.passwordVariable == "HUB_DB_PASSWORD")
        #expect(l.description == "postgres://hub@db.example:6432/monitor?schema=city")
        #expect(l.password(environment: ["HUB_DB_PASSWORD": "s3cret", "PGPASSWORD": "other"]) == "s3cret")
        // A password in the address is refused, and the message says where it goes instead.
        for bad in ["postgres://hub:s3cret@db/monitor", "postgres://hub@db/monitor?password=s3cret"] {
            #expect(throws: StoreError.self) { try PostgresLocation(url: bad) }
            do { _ = try PostgresLocation(url: bad) } catch { #expect("\(error)".contains("PGPASSWORD") && !"\(error)".contains("s3cret")) }
        }
        #expect(throws: StoreError.self) { try PostgresLocation(url: "postgres://db/monitor") }             // no user
        #expect(throws: StoreError.self) { try PostgresLocation(url: "postgres://hub@db/") }                // no database
        #expect(throws: StoreError.self) { try PostgresLocation(url: "postgres://hub@db/m?schema=a;drop") } // not an identifier
        #expect(throws: StoreError.self) { try PostgresLocation(url: "postgres://hub@db/m?sslmode=maybe") }
        #expect(throws: StoreError.self) { try PostgresLocation(url: "postgres://hub@db/m?colour=blue") }
        #expect(PostgresLocation.isPostgres("postgresql://hub@db/m") && !PostgresLocation.isPostgres("var/hub.sqlite"))
    }

    @Test func thePasswordFileIsReadAsLibpqReadsIt() throws {
        let dir = scratchDirectory("pgpass")
        let file = dir.appendingPathComponent("pgpass")
        try """
            # host:port:database:user:password
            other.example:5432:*:hub:wrong
            db.example:5432:monitor:hub:pa\\:ss
            *:*:*:*:fallback
            """.write(to: file, atomically: true, encoding: .utf8)
        let l = try PostgresLocation(url: "postgres://hub@db.example/monitor")
        #expect(l.password(environment: ["PGPASSFILE": file.path]) == "pa:ss")
        #expect(l.password(environment: ["PGPASSFILE": file.path, "PGPASSWORD": "env"]) == "env")
        let other = try PostgresLocation(url: "postgres://reader@elsewhere/x")
        #expect(other.password(environment: ["PGPASSFILE": file.path]) == "fallback")
    }
}

@Suite(.enabled(if: PostgresTestServer.available, "no PostgreSQL server"))
struct PostgresWorkerTests {
    @Test func aWrongPasswordIsRefusedWithTheServersReason() throws {
        let url = try PostgresTestServer.freshURL("auth")
        setenv("HUB_TEST_WRONG_PASSWORD", "not-the-password", 1)
        do {
            _ = try PostgresStore(url: url + "&password_env=HUB_TEST_WRONG_PASSWORD")
            Issue.record("a wrong password was accepted")
        } catch {
            #expect("\(error)".contains("password authentication failed"), "\(error)")
            #expect(!"\(error)".contains("not-the-password"))
        }
    }

    /// Workers started together on a new schema: each opens the store, none fails on the
    /// schema or the migrations the others are creating.
    @Test func workersStartedTogetherOnANewSchemaAllOpenIt() throws {
        let url = try PostgresTestServer.freshURL("start")
        let errors = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            do { _ = try PostgresStore(url: url) } catch { errors.withLock { $0.append("\(error)") } }
        }
        #expect(errors.withLock { $0 }.isEmpty, "\(errors.withLock { $0 })")
    }

    /// (A worker that dies — its connection closes — is the crash-resume script's case:
    /// `crash_resume.py --postgres … --workers 2` kills one of two workers twenty times.)
    @Test func aClaimIsHeldByOneWorkerUntilReleased() throws {
        let url = try PostgresTestServer.freshURL("claim")
        let a = try PostgresStore(url: url), b = try PostgresStore(url: url)
        let held = try #require(try a.claim("pull:minzheng"))
        #expect(try b.claim("pull:minzheng") == nil, "a second worker must not get the same pull")
        let other = try #require(try b.claim("pull:canlian"), "other work is free")
        other.release()
        held.release()
        let taken = try #require(try b.claim("pull:minzheng"), "released work goes to the next worker")
        // A claim dropped without release (its worker's code unwound) frees the work too.
        var dropped: (any WorkClaim)? = try #require(try b.claim("rules:7"))
        #expect(try a.claim("rules:7") == nil)
        dropped = nil
        let after = try #require(try a.claim("rules:7"))
        after.release(); taken.release()
        _ = dropped
    }

    @Test func twoWritersOfOneSourceTakeTurnsAndTheSecondFindsEverythingUnchanged() throws {
        let url = try PostgresTestServer.freshURL("turns")
        let store = try PostgresStore(url: url)
        let type = try RecordType.load(text: """
            type: turn_claim
            title: 结算
            key: [claim_id]
            fields:
              claim_id: { type: text, title: 结算号, required: true }
              self_pay: { type: money, title: 个人自付 }
            """, file: "turn_claim.yaml")
        try store.prepare([type])
        let records: [MappedRecord] = (0..<3000).map { i in MappedRecord(type: type, key: "K\(i)", values: type.fields.map { f in f.name == "claim_id" ? .text("K\(i)") : .money(Int64(i)) },
                                            document: "claims.csv", row: i + 2, rowHash: UInt64(i)) }
        let results = Locked<[Result<RunCounts, any Error>]>([])
        let threads = (0..<2).map { _ in
            Thread {
                let counts = Result {
                    try store.withRun(try store.startRun(source: "claims", period: Period(year: 2026, month: 10)!, mappingVersion: "v1")) { w in
                        var c = RunCounts()
                        for o in try w.upsert(batch: records) {
                            switch o {
                            case .inserted: c.inserted += 1
                            case .unchanged: c.unchanged += 1
                            case .updated: c.updated += 1
                            case .conflict: c.quarantined += 1
                            }
                        }
                        return c
                    }
                }
                results.update { $0.append(counts) }
            }
        }
        threads.forEach { $0.start() }
        while results.update({ $0.count }) < 2 { usleep(10_000) }
        let both = try results.update { $0 }.map { try $0.get() }.sorted { $0.inserted > $1.inserted }
        #expect(both[0].inserted == 3000 && both[0].unchanged == 0)
        #expect(both[1].inserted == 0 && both[1].unchanged == 3000, "the second writer waited for the first and found its records: \(both)")
        #expect(try store.recordCount(of: type) == 3000)
    }
}

extension PostgresWorkerTests {
    /// One batch with everything a feed throws at the writer — repeated keys with the same and with
    /// other content, tabs, newlines, backslashes and a NUL in values, empty values — then the same
    /// keys again with changes: PostgreSQL's COPY-and-upsert gives each record the outcome SQLite's
    /// row-by-row writer gives it, and stores the same values and field history.
    @Test func aBatchGetsTheSameOutcomesValuesAndHistoryAsOnSQLite() throws {
        let type = try RecordType.load(text: """
            type: parity_claim
            title: 结算
            key: [claim_id]
            fields:
              claim_id: { type: text, title: 结算号, required: true }
              note: { type: text, title: 备注 }
              self_pay: { type: money, title: 个人自付 }
              settled_on: { type: date, title: 结算日期 }
            """, file: "parity_claim.yaml")
        func r(_ key: String, _ note: String?, _ pay: Int64, row: Int) -> MappedRecord {
            MappedRecord(type: type, key: key, values: [.text(key), note.map(Value.text) ?? .null, .money(pay), .date(CivilDate(year: 2026, month: 10, day: 3)!)],
                         document: "claims.csv", row: row, rowHash: UInt64(row))
        }
        let first = [r("A", "tab\there", 100, row: 2), r("B", "line\nbreak \\ back", 200, row: 3), r("A", "tab\there", 100, row: 4),
                     r("A", "other", 100, row: 5), r("C", nil, 300, row: 6), r("D", "nul\u{0}byte", 400, row: 7)]
        let second = [r("A", "changed", 150, row: 2), r("B", "line\nbreak \\ back", 200, row: 3), r("A", "changed", 150, row: 3),
                      r("A", "again other", 150, row: 4), r("E", "新", 500, row: 5), r("C", nil, 300, row: 6)]
        func run(_ store: any HubStore) throws -> (outcomes: [[UpsertOutcome]], records: [String], changes: [String]) {
            try store.prepare([type])
            var outcomes: [[UpsertOutcome]] = []
            for (month, batch) in [(10, first), (11, second)] {
                _ = try store.withRun(try store.startRun(source: "s", period: Period(year: 2026, month: month)!, mappingVersion: "v1")) { w in
                    outcomes.append(try w.upsert(batch: batch))
                    return RunCounts()
                }
            }
            let records = try store.records(of: type).map { d in
                type.fields.map { d[$0.name]?.description ?? "∅" }.joined(separator: "|") + "|" + (d["_row"]?.description ?? "")
            }.sorted()
            let changes = try store.changes(of: type).map { "\($0.key) \($0.field) \($0.before ?? "∅")→\($0.after ?? "∅")" }.sorted()
            return (outcomes, records, changes)
        }
        let sqlite = try run(StoreConformanceTests.sqlite())
        let postgres = try run(PostgresTestServer.store("parity"))
        #expect(sqlite.outcomes[0] == [.inserted, .inserted, .unchanged, .conflict(document: "claims.csv", row: 2), .inserted, .inserted])
        #expect(postgres.outcomes == sqlite.outcomes)
        #expect(postgres.changes == sqlite.changes && sqlite.changes.count == 2, "\(postgres.changes) vs \(sqlite.changes)")
        // A NUL cannot be stored in PostgreSQL text and is left out (SQLite's reading stops at it:
        // a limit of the embedded store, noted); everything else is the same.
        #expect(postgres.records.filter { !$0.hasPrefix("D|") } == sqlite.records.filter { !$0.hasPrefix("D|") }, "\(postgres.records) vs \(sqlite.records)")
        #expect(postgres.records.contains("D|nulbyte|4.00|2026-10-03|7"))
    }
}
