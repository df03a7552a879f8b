import Foundation
import Testing
@testable import Hub
@testable import HubSQLite
@testable import hubd
import HubTesting
import Connectors
import ArgumentParser

/// Backups taken while a pull runs hold exactly what had committed, verify, and restore into
/// a store `hubd serve` starts on; the audit chain's anchors find truncation; a store written
/// by the first release opens under this one and passes the store checks.
@Suite(.serialized) struct BackupTests {
    /// A department feed of claims that stops half-way until told to go on (a stand-in for a
    /// slow department server), so a backup can be taken while the pull's transaction is open.
    final class PausingFeed: Connector, @unchecked Sendable {
        static let kind = "pausing"
        static let optionsHelp: [(key: String, help: String)] = []
        static func make(options: ConfigNode, directory: String, reader: ConfigReader) -> PausingFeed? { nil }
        let first: Int, count: Int
        let pauseAfter: Int?
        let halfway = DispatchSemaphore(value: 0)
        let resume = DispatchSemaphore(value: 0)
        init(first: Int, count: Int, pauseAfter: Int? = nil) { self.first = first; self.count = count; self.pauseAfter = pauseAfter }

        func fetch(_ context: FetchContext, into sink: any DocumentSink) throws {
            try sink.begin(document: "claims.csv")
            func send(_ s: String) throws { var s = s; try s.withUTF8 { try sink.write(UnsafeRawBufferPointer($0)) } }
            try send("结算ID,证件号码,结算时间,医疗费总额,个人负担总金额\n")
            var chunk = ""
            for i in first..<(first + count) {
                chunk += "S\(i),\(makeID("411081", "19600101", i % 1000)),2026-10-03 10:00:00,\(50000 + i % 977).00,\(i % 30000).00\n"
                if chunk.utf8.count > 32_000 { try send(chunk); chunk = "" }
                if let p = pauseAfter, i - first + 1 == p {
                    try send(chunk); chunk = ""
                    halfway.signal()
                    resume.wait()
                }
            }
            try send(chunk)
            _ = try sink.end()
        }
    }

    static let mappingText = """
    source: claims
    connector: file
    fetch: { path: claims.csv }
    format: csv
    record: medical_claim
    key: [settlement_id]
    fields:
      settlement_id: 结算ID
      id_number: 证件号码
      settled_at: { from: 结算时间, format: "yyyy-MM-dd HH:mm:ss" }
      total_cost: 医疗费总额
      self_pay: 个人负担总金额
    """

    static func pull(_ store: SQLiteStore, _ feed: PausingFeed) throws -> PullResult {
        let m = try loader().load(text: mappingText, file: "claims.yaml", directory: "/")
        return try Pull(mapping: m, connector: feed, store: store).run(period: Period("2026-10")!)
    }

    @Test func aBackupTakenMidPullHoldsWhatHadCommittedVerifiesAndRestores() throws {
        let dir = scratchDirectory("backup")
        let store = try SQLiteStore(path: dir.appendingPathComponent("hub.sqlite").path)
        _ = try Self.pull(store, PausingFeed(first: 0, count: 1_000))
        for i in 0..<3 { try store.audit("admin", "查看案件", target: "案件 #\(i)", address: "127.0.0.1") }
        let type = try #require(shippedTypes["medical_claim"])
        #expect(try store.recordCount(of: type) == 1_000)

        // A large second delivery is half-way through its transaction when the backup is taken.
        let feed = PausingFeed(first: 1_000, count: 40_000, pauseAfter: 20_000)
        let done = DispatchSemaphore(value: 0)
        let outcome = Locked<Result<PullResult, any Error>?>(nil)
        let thread = Thread { outcome.value = Result { try Self.pull(store, feed) }; done.signal() }
        thread.start()
        #expect(feed.halfway.wait(timeout: .now() + 60) == .success)
        let backup = dir.appendingPathComponent("backups/hub-1.sqlite").path
        let manifest = try store.backup(to: backup)
        feed.resume.signal()
        #expect(done.wait(timeout: .now() + 120) == .success)
        #expect(try outcome.value?.get().counts.inserted == 40_000, "the pull went on while the backup was taken")
        #expect(try store.recordCount(of: type) == 41_000)

        // The backup: what had committed when it began, no more.
        #expect(manifest.tables["rec_medical_claim"] == 1_000)
        #expect(manifest.tables["audit_log"] == 3 && manifest.auditHead?.id == 3)
        #expect(manifest.schema.last == "v9-case-photos")
        #expect(try SQLiteBackup.verify(backup).isEmpty)
        let perms = try FileManager.default.attributesOfItem(atPath: backup)[.posixPermissions] as? Int
        #expect(perms == 0o600, "personal data: owner only")

        // A damaged copy is caught, and says how.
        let damaged = dir.appendingPathComponent("damaged.sqlite").path
        try FileManager.default.copyItem(atPath: backup, toPath: damaged)
        try FileManager.default.copyItem(at: BackupManifest.url(forBackup: backup), to: BackupManifest.url(forBackup: damaged))
        let h = try #require(FileHandle(forUpdatingAtPath: damaged))
        try h.seek(toOffset: UInt64(manifest.bytes - 100))
        h.write(Data([0x42]))
        try h.close()
        #expect(try SQLiteBackup.verify(damaged).contains { $0.contains("SHA-256") })

        // The restore drill: the backup in a fresh folder, `hubd serve` on it.
        let restored = scratchDirectory("restore").appendingPathComponent("hub.sqlite").path
        try FileManager.default.copyItem(atPath: backup, toPath: restored)
        let port = try unusedLoopbackPort()
        let serve = Process()
        serve.executableURL = ServiceTests.hubd
        serve.currentDirectoryURL = repoRoot
        serve.arguments = ["serve", "--db", restored, "--port", String(port), "--no-scheduler"]
        serve.standardOutput = FileHandle.nullDevice
        serve.standardError = FileHandle.nullDevice
        try serve.run()
        defer { if serve.isRunning { kill(serve.processIdentifier, SIGKILL) } }
        var healthy = false
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && !healthy {
            var client = TestHTTP(port: port)
            healthy = (try? client.request("GET", "/healthz").status) == 200
            if !healthy { Thread.sleep(forTimeInterval: 0.2) }
        }
        #expect(healthy, "hubd serve starts on the restored store")
        kill(serve.processIdentifier, SIGTERM)
        serve.waitUntilExit()
        let back = try SQLiteStore(path: restored)
        #expect(try back.recordCount(of: type) == 1_000)
        #expect(try back.verifyAuditLog() == nil)
        // The pull that was in flight is marked interrupted by the service's start, not lost silently.
        #expect(try back.runs(source: "claims").map(\.status) == [.failed, .succeeded])
    }

    @Test func anchorsKeptOutsideFindTheNewestAuditEntriesDeleted() throws {
        let dir = scratchDirectory("anchors")
        let store = try SQLiteStore(path: dir.appendingPathComponent("hub.sqlite").path)
        for i in 0..<10 { try store.audit("va", "查看案件", target: "案件 #\(i)", address: "127.0.0.1") }
        let head = try #require(try store.auditLog(limit: 1).first)
        // The line the service writes each day, as journald keeps it.
        let journal = dir.appendingPathComponent("journal.txt")
        try "Dec 02 01:00:00 hub hubd[1]: {\"label\":\"hub.daemon\",\"message\":\"审计链头\",\"audit_head\":\"\(head.id):\(head.hash)\"}\n"
            .write(to: journal, atomically: true, encoding: .utf8)
        #expect(AuditAnchors.parse(try String(contentsOf: journal, encoding: .utf8)) == [.init(id: head.id, hash: head.hash)])
        #expect(try AuditAnchors.check(AuditAnchors.parse(try String(contentsOf: journal, encoding: .utf8)), in: store).isEmpty)
        // Someone with the file drops the triggers and deletes the newest three entries: the
        // chain that is left still verifies, the anchor does not.
        try store.unsafeExecuteForTests("""
            DROP TRIGGER audit_log_no_delete;
            DELETE FROM audit_log WHERE id > 7;
            """)
        #expect(try store.verifyAuditLog() == nil, "a shortened chain verifies on its own")
        let problems = try AuditAnchors.check([.init(id: head.id, hash: head.hash)], in: store)
        #expect(problems.count == 1 && problems[0].contains("#\(head.id)") && problems[0].contains("截断"))
        let args = ["--db", store.path, "--anchor", journal.path]
        #expect(throws: ExitCode.self) { try AuditCommand.Verify.parse(args).run() }
    }

    /// Upgrades: a store written by the first release (`hubd demo` of commit 846d6b5, schema v1:
    /// runs, quarantine, records, no alerts, cases or users yet) opens under this version, its
    /// migrations run once, nothing it held is lost, and it then passes every store check.
    @Test func aStoreWrittenByTheFirstReleaseOpensMigratedAndPassesTheStoreChecks() throws {
        let fixture = repoRoot.appendingPathComponent("Tests/Fixtures/store-v1-846d6b5.sqlite")
        func upgraded() throws -> SQLiteStore {
            let path = scratchDirectory("upgrade").appendingPathComponent("hub.sqlite").path
            try FileManager.default.copyItem(atPath: fixture.path, toPath: path)
            return try SQLiteStore(path: path)
        }
        let before = try SQLiteBackup.inspect(fixture.path).manifest
        #expect(before.schema == ["v1-runs-quarantine-changes"])
        let store = try upgraded()
        let after = try SQLiteBackup.inspect(store.path).manifest
        #expect(after.schema.count == 9 && after.schema.last == "v9-case-photos")
        for (table, n) in before.tables where table != "grdb_migrations" {
            #expect(after.tables[table] == n, "\(table): \(n) rows before, \(after.tables[table] ?? -1) after")
        }
        #expect(try store.runs(source: nil).filter { $0.status == .succeeded }.count == 8)
        // Opening again runs nothing twice.
        #expect(try SQLiteBackup.inspect(try SQLiteStore(path: store.path).path).manifest.schema == after.schema)
        // The old runs were never evaluated (rules came later): the service evaluates them at its
        // first start, and today's rules raise alerts on the old month.
        let mdir = repoRoot.appendingPathComponent("Mappings")
        let (rules, params, _) = RuleLoader.loadDirectory(mdir.appendingPathComponent("rules"), types: shippedTypes)
        func settle(_ s: SQLiteStore, with rules: [Rule]) throws {
            for (id, p) in try s.runsAwaitingRules() {
                let engine = try RuleEngine(rules: rules, params: params, types: shippedTypes, store: s)
                _ = try engine.evaluateAndStore(period: Period(p)!, only: try engine.subjects(touchedBy: id), into: s, evaluatedRun: id)
            }
        }
        try settle(store, with: rules)
        #expect(try store.runsAwaitingRules().isEmpty)
        #expect(try store.alertCount(period: "2026-10") > 0, "the old month's records raise alerts under today's rules")
        // Every store check on the upgraded file (its old runs settled without alerts: the checks
        // count the cases they make themselves; the old records, runs and quarantine stay in it).
        let failures = StoreConformance(makeStore: { let s = try upgraded(); try settle(s, with: []); return s }).run()
        #expect(failures.isEmpty, "\(failures.map(\.description).joined(separator: "\n"))")
    }

    /// hub.yaml `backup:` — the service takes one backup per slot (a restart does not take
    /// another), keeps the newest `keep`, audits each, and logs the audit chain's head.
    @Test func theServiceBacksUpOncePerSlotAndKeepsTheNewest() throws {
        let dir = scratchDirectory("scheduled-backup")
        let store = try SQLiteStore(path: dir.appendingPathComponent("hub.sqlite").path)
        try store.audit("admin", "登录", target: "admin", address: "127.0.0.1")
        let mappings = dir.appendingPathComponent("Mappings")
        try FileManager.default.createDirectory(at: mappings, withIntermediateDirectories: true)
        let settings = BackupSettings(schedule: try Schedule("daily at 01:30"), folder: dir.appendingPathComponent("backups"), keep: 2)
        func daemon() -> Daemon {
            let d = Daemon(store: store, mappingsDirectory: mappings, connectors: BuiltinConnectors.registry)
            d.backups = settings
            d.takeBackup = { try store.backup(to: $0) }
            return d
        }
        // 2 December 2026, 01:30 in the county is 1 December 17:30 UTC.
        let slot = Date(timeIntervalSince1970: 1_796_146_200)
        let d = daemon()
        try d.tick(now: slot.addingTimeInterval(60)); d.waitForBackup()
        try d.tick(now: slot.addingTimeInterval(120)); d.waitForBackup()
        #expect(settings.existing().map(\.lastPathComponent) == ["hub-20261202-013100.sqlite"])
        let restarted = daemon()
        try restarted.tick(now: slot.addingTimeInterval(600)); restarted.waitForBackup()
        #expect(settings.existing().count == 1, "a restart within the slot takes no second backup")
        for day in 1...3 { try d.tick(now: slot.addingTimeInterval(Double(day) * 86400 + 60)); d.waitForBackup() }
        #expect(settings.existing().map(\.lastPathComponent) == ["hub-20261204-013100.sqlite", "hub-20261205-013100.sqlite"])
        #expect(settings.existing().allSatisfy { (try? SQLiteBackup.verify($0.path))?.isEmpty == true })
        #expect(!FileManager.default.fileExists(atPath: BackupManifest.url(forBackup: dir.appendingPathComponent("backups/hub-20261202-013100.sqlite").path).path))
        #expect(try store.auditLog(limit: 50).filter { $0.action == "备份" }.count == 4)
    }
}
