import Foundation
import Testing
import ArgumentParser
@testable import Hub
@testable import hubd
@testable import HubSQLite
import SimCounty

/// The commands an operator types, run in-process.
/// The command line, in one serialized suite: several of these capture the process's standard
/// output, which only one test at a time may do.
@Suite(.serialized) struct CommandLineTests {
    var mappings: String { repoRoot.appendingPathComponent("Mappings").path }

    @Test func mappingCheckPassesOnEveryShippedMapping() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: mappings).filter { $0.hasSuffix(".yaml") }.map { mappings + "/" + $0 }
        let cmd = try MappingCommand.Check.parse(files + ["--types", mappings + "/types"])
        try cmd.run()
    }

    @Test func mappingCheckFailsOnABrokenMappingAndOnAMissingSampleColumn() throws {
        let dir = scratchDirectory("cli")
        let broken = dir.appendingPathComponent("broken.yaml")
        try "source: broken\nconnector: file\nfetch: { path: x.csv }\nformat: csv\nrecord: medical_claim\nfields: { settlement_id: a }\n"
            .write(to: broken, atomically: true, encoding: .utf8)
        let cmd = try MappingCommand.Check.parse([broken.path, "--types", mappings + "/types"])
        #expect(throws: ExitCode.self) { try cmd.run() }

        // A column renamed in the sample: the check names the mapping line and suggests the header.
        let m = dir.appendingPathComponent("claims.yaml")
        try """
        source: claims
        connector: file
        fetch: { path: s.csv }
        format: csv
        record: medical_claim
        fields:
          settlement_id: 结算ID
          id_number: 身份证号
          settled_at: 结算时间
          total_cost: 医疗费总额
        """.write(to: m, atomically: true, encoding: .utf8)
        let sample = dir.appendingPathComponent("s.csv")
        try "结算ID,身份证号码,结算时间,医疗费总额\nA,11010519491231002X,2026-10-01 10:00:00,60000\n".write(to: sample, atomically: true, encoding: .utf8)
        let mapping = try loader().load(file: m)
        let problems = try SampleCheck.columns(of: mapping, sample: sample.path)
        #expect(problems == ["\(m.relativePathForDisplay):8:3: 字段 id_number 的来源列 \"身份证号\" 在样本 \(sample.path) 的表头中不存在，是否应为 \"身份证号码\"？"])
    }

    @Test func mappingTryMapsTheBundledSampleWithoutWriting() throws {
        let result = try SampleCheck.run(try loader().load(file: URL(fileURLWithPath: mappings + "/medical-claims.yaml")),
                                         sample: mappings + "/samples/yibao_setl_202610.csv", period: Period("2026-10")!)
        #expect(result.read == 47 && result.records.count == 40 && result.rejected.count == 6 && result.skipped == 1)
        #expect(result.rejected.map(\.0) == [23, 24, 25, 47, 48, 49])
    }
}

/// What a command writes to standard output, captured through a temporary file.
func capturingStandardOutput(_ body: () throws -> Void) throws -> String {
    let url = scratchDirectory("stdout").appendingPathComponent("out.txt")
    FileManager.default.createFile(atPath: url.path, contents: nil)
    let file = try FileHandle(forWritingTo: url)
    fflush(nil)
    let saved = dup(1)
    dup2(file.fileDescriptor, 1)
    defer { fflush(nil); dup2(saved, 1); close(saved); try? file.close() }
    try body()
    fflush(nil)
    return String(decoding: try Data(contentsOf: url), as: UTF8.self)   // keeps a byte-order mark
}

extension CommandLineTests {
    @Test func theExportStreamsEveryAlertWithIDNumbersMaskedAndIsAudited() throws {
        let county = try RulesTests.pulledCounty()
        let period = county.sim.county.config.period
        let stored = try county.engine().evaluateAndStore(period: period, into: county.store).totals.alerts
        let args = ["--period", period.description, "--db", county.store.path, "--mappings", repoRoot.appendingPathComponent("Mappings").path]
        let csv = try capturingStandardOutput { try AlertsCommand.Export.parse(args).run() }
        let lines = csv.split(separator: "\r\n")
        #expect(lines.count == stored + 1 && lines[0].hasPrefix("\u{FEFF}规则,名称"))
        let persons = try county.store.query("SELECT subject_id FROM alerts WHERE subject_kind = 'person'").map { $0["subject_id"]! }
        #expect(!persons.isEmpty && persons.allSatisfy { !csv.contains($0) && csv.contains(ResidentID.mask($0)) })
        let ndjson = try capturingStandardOutput { try AlertsCommand.Export.parse(args + ["--format", "ndjson", "--unmasked"]).run() }
        #expect(ndjson.split(separator: "\n").count == stored && persons.allSatisfy { ndjson.contains("\"\($0)\"") })
        let json = try capturingStandardOutput { try AlertsCommand.Export.parse(args + ["--format", "json"]).run() }
        let array = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: String]]
        #expect(array?.count == stored && array?.first?["rule"] != nil, "one JSON array")
        let audit = try county.store.auditLog(limit: 10).filter { $0.action == "导出预警" }
        #expect(audit.count == 3 && audit.contains { $0.detail.contains("完整身份证号") && $0.detail.contains("\(stored) 条") })
    }
}

extension CommandLineTests {
    /// `mapping try` reads the record types beside the mapping (a new department's own type),
    /// and `--live` fetches through the mapping's own connector, reading only the first rows.
    @Test func liveTryUsesTheConnectorAndTheTypesBesideTheMapping() throws {
        let rows = (1...500).map { "H\($0),\(["A", "B", "C", "D"][$0 % 4]),2026-10-0\($0 % 9 + 1)" }
        let server = try LoopbackHTTPServer { _ in .text("户编号,鉴定等级,鉴定日期\n" + rows.joined(separator: "\n") + "\n", contentType: "text/csv") }
        defer { server.stop() }
        let dir = scratchDirectory("try")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("types"), withIntermediateDirectories: true)
        try """
        type: housing_safety
        title: 危房鉴定
        subject: household
        link: household_id
        key: [household_id, appraised_on]
        fields:
          household_id: { type: text, title: 户编号, required: true }
          grade: { type: code, title: 鉴定等级, values: [A, B, C, D] }
          appraised_on: { type: date, title: 鉴定日期 }
        """.write(to: dir.appendingPathComponent("types/housing_safety.yaml"), atomically: true, encoding: .utf8)
        let mapping = dir.appendingPathComponent("housing.yaml")
        try """
        source: housing
        connector: http
        fetch: { url: "\(server.baseURL)/housing.csv" }
        format: csv
        record: housing_safety
        fields: { household_id: 户编号, grade: { from: 鉴定等级, map: { A: A, B: B, C: C } }, appraised_on: 鉴定日期 }
        """.write(to: mapping, atomically: true, encoding: .utf8)
        let out = try capturingStandardOutput { try MappingCommand.Try.parse([mapping.path, "--live", "--rows", "50", "--limit", "3"]).run() }
        #expect(out.contains("实时拉取（最多 50 行）共 50 行"), "\(out)")
        #expect(out.contains("拒收 12 行"), "grade D is not in the code table: 12 of the first 50 rows")
        #expect(out.components(separatedBy: "→ housing_safety").count - 1 == 3, "three records shown")
        #expect(out.components(separatedBy: "✗ 拒收").count - 1 == 3, "and three rejected rows, not all twelve")
        #expect(server.requestLog.count == 1)
        #expect(throws: (any Error).self) { _ = try MappingCommand.Try.parse([mapping.path]) }   // neither --sample nor --live
    }
}

extension CommandLineTests {
    /// A roster without an update date leaves roster_stale unable to fire; rules check says so.
    @Test func rulesThatCannotFireAreNamedWithTheFieldsTheyLack() throws {
        let dir = scratchDirectory("rules-check")
        let m = dir.appendingPathComponent("Mappings")
        try FileManager.default.copyItem(at: repoRoot.appendingPathComponent("Mappings"), to: m)
        let roster = m.appendingPathComponent("roster.yaml")
        let text = try String(contentsOf: roster, encoding: .utf8)
        try text.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.contains("updated_on:") }.joined(separator: "\n")
            .write(to: roster, atomically: true, encoding: .utf8)
        let out = try capturingStandardOutput { try RulesCommand.Check.parse(["--mappings", m.path]).run() }
        #expect(out.contains("警告：规则 roster_stale 不会触发：没有映射填写 household.updated_on（信息更新日期）"), "\(out)")
        #expect(!out.contains("规则 medical_burden 不会触发"), "the other rules can fire")
        // Where no rules are found, it says where it looked and fails.
        let empty = dir.appendingPathComponent("Empty")
        try FileManager.default.createDirectory(at: empty.appendingPathComponent("rules"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: m.appendingPathComponent("types"), to: empty.appendingPathComponent("types"))
        #expect(throws: ExitCode.self) { _ = try capturingStandardOutput { try RulesCommand.Check.parse(["--mappings", empty.path]).run() } }
    }
}

extension CommandLineTests {
    /// `mapping init --url`: the first page of a department's API, fetched through the real
    /// HTTP connector with the token from the environment, becomes the sample; the draft names
    /// the variable, never the token.
    @Test func initFromAURLDraftsAnHTTPMappingWithTheSecretByName() throws {
        let token = "s3cret-\(UInt32.random(in: 0...UInt32.max))"
        setenv("HUB_TEST_INIT_TOKEN", token, 1)
        defer { unsetenv("HUB_TEST_INIT_TOKEN") }
        let records = (1...30).map { i in
            "{\"结算ID\":\"S\(i)\",\"证件号码\":\"\(makeID("411081", "19600101", i))\",\"结算时间\":\"2026-10-0\(i % 9 + 1) 10:00:00\",\"医疗费总额\":\"\(50000 + i * 100).50\",\"个人负担总金额\":\"\(i * 300).25\"}"
        }
        let server = try LoopbackHTTPServer { req in
            guard req.headers["authorization"] == "Bearer \(token)" else { return .text("{\"code\":401}", status: 401, contentType: "application/json") }
            return .text("{\"code\":0,\"data\":{\"list\":[\(records.joined(separator: ","))],\"next_cursor\":\"c2\"}}", contentType: "application/json")
        }
        defer { server.stop() }
        let out = scratchDirectory("init-url").appendingPathComponent("yibao-api.yaml")
        let url = "\(server.baseURL)/api/setl?month=2026-10"
        _ = try capturingStandardOutput {
            try MappingCommand.Init.parse(["--url", url, "--bearer-env", "HUB_TEST_INIT_TOKEN", "--type", "medical_claim",
                                           "--types", mappings + "/types", "--out", out.path]).run()
        }
        let yaml = try String(contentsOf: out, encoding: .utf8)
        #expect(yaml.contains("connector: http") && yaml.contains("url: \"\(url)\"") && yaml.contains("bearer_env: HUB_TEST_INIT_TOKEN"), "\(yaml)")
        #expect(!yaml.contains(token), "the token itself is never written")
        #expect(yaml.contains("json: { records_at: data.list, cursor_at: data.next_cursor }"), "the records path and the cursor found: \(yaml)")
        #expect(yaml.contains("id_number: 证件号码") && yaml.contains("settlement_id: 结算ID"), "\(yaml)")
        #expect(server.requestLog.count == 1)
        // The draft loads and pulls through the same connector.
        let m = try loader().load(file: out)
        #expect(m.connector == "http")
        // A key in the address is refused before anything is fetched.
        #expect(throws: (any Error).self) {
            _ = try MappingCommand.Init.parse(["--url", "\(server.baseURL)/api?token=abc", "--type", "medical_claim"])
        }
        #expect(server.requestLog.count == 1)
    }

    /// `hubd retention plan|apply` with the shipped types (medical claims kept 36 months): a
    /// claim of a month long past goes, with its alert's evidence masked; an audit entry says so.
    @Test func retentionDeletesClaimsPastTheirMonthsAndMasksTheEvidenceTheyLeave() throws {
        let dir = scratchDirectory("retention")
        let store = try SQLiteStore(path: dir.appendingPathComponent("hub.sqlite").path)
        let m = try loader().load(text: BackupTests.mappingText, file: "claims.yaml", directory: dir.path)
        let id = makeID("411081", "19600101", 7)
        for (period, row) in [("2022-05", "OLD1,\(id),2022-05-03 10:00:00,90000,30000"), ("2026-10", "NEW1,\(id),2026-10-03 10:00:00,90000,30000")] {
            try "结算ID,证件号码,结算时间,医疗费总额,个人负担总金额\n\(row)\n".write(to: dir.appendingPathComponent("claims.csv"), atomically: true, encoding: .utf8)
            _ = try Pull(mapping: m, connector: try loader().connector(for: m), store: store).run(period: Period(period)!)
        }
        var a = Alert(rule: "medical_outside_roster", title: "名单外人员大额医疗自付", severity: .medium, subjectKind: .person, subjectID: id,
                      householdID: nil, villageCode: nil, townshipCode: "411081101", period: "2022-05", message: "自付 30,000 元",
                      evidence: [Evidence(type: "medical_claim", source: "claims", run: 1, row: 2, fields: ["settlement_id": "OLD1", "id_number": id])],
                      ruleVersion: "r1")
        try store.saveAlerts([a])
        a.period = "2026-10"
        try store.saveAlerts([a])
        let db = ["--db", store.path, "--mappings", mappings, "--no-archive"]
        let plan = try capturingStandardOutput { try RetentionCommand.Plan.parse(db).run() }
        #expect(plan.contains("medical_claim（医保结算记录）：保留 36 个月，将删除") && plan.contains("之前的 1 条"), "\(plan)")
        #expect(plan.contains("未设保留期（一直保留）：") && plan.contains("household"), "\(plan)")
        let applied = try capturingStandardOutput { try RetentionCommand.Apply.parse(db).run() }
        #expect(applied.contains("合计已删除 1 条记录，1 条预警的证据中身份证号已遮盖"), "\(applied)")
        let type = try #require(shippedTypes["medical_claim"])
        #expect(try store.records(of: type).map { $0["settlement_id"]?.description } == ["NEW1"])
        let evidence = try store.query("SELECT period, evidence FROM alerts ORDER BY period")
        #expect(evidence.count == 2 && !evidence[0]["evidence"]!.contains(id) && evidence[1]["evidence"]!.contains(id))
        #expect(try store.auditLog(limit: 5).contains { $0.action == "按保留期删除" && $0.detail.contains("medical_claim") })
        // A retention the type file cannot mean is refused with its line.
        #expect(throws: DiagnosticList.self) {
            _ = try RecordType.load(text: "type: t\nfields: { a: text }\nkey: [a]\nretention: two years\n", file: "t.yaml")
        }
    }

    /// `hubd archive list|prune` and `hubd replay` on a store whose pulls archived what they read.
    @Test func theArchiveAndReplayCommandsReadTheArchiveBesideTheStore() throws {
        let county = try ArchiveReplayTests.pulledCounty(scale: 0.03)
        county.sim.stop()
        _ = try RuleEngine(rules: county.rules, params: county.params, types: shippedTypes, store: county.store)
            .evaluateAndStore(period: county.period, into: county.store)
        let db = ["--db", county.store.path, "--mappings", mappings]
        let summary = try capturingStandardOutput { try ArchiveCommand.List.parse(db).run() }
        #expect(summary.contains("hub.archive（保留期 13 个月）") && summary.contains("medical-claims 2026-10：1 个文件"), "\(summary)")
        let run = county.runs["medical-claims"]!
        let listed = try capturingStandardOutput { try ArchiveCommand.List.parse(db + ["--run", String(run)]).run() }
        #expect(listed.contains("运行 #\(run) medical-claims 2026-10") && listed.contains("已归档") && !listed.contains("未归档"), "\(listed)")
        let replay = try capturingStandardOutput { try ReplayCommand.parse(db + ["--period", "2026-10"]).run() }
        #expect(replay.contains("预警没有差异") && replay.contains("medical-claims：映射未变"), "\(replay)")
        #expect(ReplayReport.last(in: county.archive)?.period == "2026-10", "kept for the 映射与规则 page")
        let prune = try capturingStandardOutput { try ArchiveCommand.Prune.parse(db + ["--dry-run"]).run() }
        #expect(prune.contains("将删除 0 个来源月份"), "\(prune)")
        #expect(throws: (any Error).self) { try ReplayCommand.parse(db + ["--period", "2026-10", "--no-archive"]).run() }
    }
}

@Suite struct ShippedConfigTests {
    /// The example configuration an administrator copies loads, every key of it.
    @Test func theShippedHubYamlLoads() throws {
        let c = try HubConfig.load(repoRoot.appendingPathComponent("deploy/hub.yaml").path)
        #expect(c.port == 8080 && c.waitingMinutes == 60 && c.lateGraceDays == 1 && c.backoff.maxAttempts == 6)
        #expect(c.archive?.retentionMonths == 13 && c.archive?.folder.path == "/var/lib/hub/hub.archive", "beside the database, where the command-line tools look too")
        // The commented backup block, switched on.
        let text = try String(contentsOf: repoRoot.appendingPathComponent("deploy/hub.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "# backup:\n#   schedule", with: "backup:\n  schedule")
            .replacingOccurrences(of: "#   folder: /var/backups", with: "  folder: /var/backups").replacingOccurrences(of: "#   keep", with: "  keep")
        let file = scratchDirectory("config").appendingPathComponent("hub.yaml")
        try text.write(to: file, atomically: true, encoding: .utf8)
        let b = try #require(try HubConfig.load(file.path).backups)
        #expect(b.keep == 7 && b.folder.path == "/var/backups/hub" && b.schedule.description == "daily at 01:30")
    }
}
