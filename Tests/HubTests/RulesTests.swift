import Foundation
import Testing
@testable import Hub
@testable import HubSQLite
import Connectors
import SimCounty

/// The shipped rules over the simulated county, scored against its ground truth.
@Suite(.serialized) struct RulesTests {
    struct County {
        let sim: Simulator
        let store: SQLiteStore
        let rules: [Rule]
        let params: RuleParams
        let runs: [String: Int64]
        func engine() throws -> RuleEngine { try RuleEngine(rules: rules, params: params, types: shippedTypes, store: store) }
    }

    /// Simulates a county, pulls every shipped mapping for its month into a fresh SQLite file.
    static func pulledCounty(scale: Double = 0.03, seed: UInt64 = 20261001) throws -> County {
        var c = CountyConfig(); c.scale = scale; c.seed = seed
        let sim = try Simulator(config: c)
        let dir = scratchDirectory("rules")
        try sim.write(to: dir)
        try sim.start()
        defer { sim.stop() }
        let store = try SQLiteStore(path: dir.appendingPathComponent("hub.sqlite").path)
        let mdir = repoRoot.appendingPathComponent("Mappings")
        var runs: [String: Int64] = [:]
        for f in try FileManager.default.contentsOfDirectory(atPath: mdir.path).filter({ $0.hasSuffix(".yaml") }).sorted() {
            let m = try loader().load(file: mdir.appendingPathComponent(f))
            runs[m.source] = try Pull(mapping: m, connector: try loader().connector(for: m), store: store)
                .run(period: c.period, environment: sim.environment(dropDirectory: dir)).runID
        }
        let (rules, params, problems) = RuleLoader.loadDirectory(mdir.appendingPathComponent("rules"), types: shippedTypes)
        #expect(problems.isEmpty, "\(problems)")
        return County(sim: sim, store: store, rules: rules, params: params, runs: runs)
    }

    @Test func everyPlantedCaseIsFoundAndNoLookAlikeIsFlagged() throws {
        for seed: UInt64 in [20261001, 7] {
            let county = try Self.pulledCounty(seed: seed)
            let alerts = try county.engine().evaluate(period: county.sim.county.config.period)
            let score = RuleScore(alerts: alerts, planted: county.sim.truth.planted, negatives: county.sim.truth.negatives)
            #expect(Set(score.lines.map(\.rule)) == Set(county.rules.map(\.name)))
            for l in score.lines {
                #expect(l.planted > 0, "\(l.rule) has no planted case")
                #expect(l.found == l.planted, "\(l.rule): found \(l.found) of \(l.planted) (seed \(seed))")
                #expect(l.negativesFlagged == 0, "\(l.rule): \(l.negativesFlagged) look-alikes flagged (seed \(seed))")
                #expect(l.alerts == l.alertsOnPlanted, "\(l.rule): \(l.alerts - l.alertsOnPlanted) alerts on unplanted subjects (seed \(seed))")
            }
        }
    }

    @Test func alertsCarryPlainChineseEvidenceAndRouting() throws {
        let county = try Self.pulledCounty()
        let alerts = try county.engine().evaluate(period: county.sim.county.config.period)
        let burden = try #require(alerts.first { $0.rule == "medical_burden" })
        #expect(burden.message.hasPrefix("家庭成员近 12 个月住院个人自付 "))
        #expect(burden.message.contains("低于监测标准 7000 元"))
        #expect(burden.evidence.contains { $0.type == "medical_claim" && $0.source == "medical-claims" && $0.run == county.runs["medical-claims"] })
        #expect(burden.townshipCode == String(burden.villageCode!.prefix(9)))
        #expect(burden.caseKey == burden.householdID)
        // A person outside the roster gets a person-level case of their own.
        let outside = try #require(alerts.first { $0.rule == "medical_outside_roster" })
        #expect(outside.householdID == nil && outside.caseKey == "person:\(outside.subjectID)")
    }

    @Test func reEvaluatingOrRePullingAddsNoAlertOrCase() throws {
        let county = try Self.pulledCounty()
        let period = county.sim.county.config.period
        let first = try county.store.saveAlerts(try county.engine().evaluate(period: period))
        #expect(first.newAlerts > 0 && first.newCases > 0)
        let again = try county.store.saveAlerts(try county.engine().evaluate(period: period))
        #expect(again.newAlerts == 0 && again.newCases == 0 && again.updated == 0)
        #expect(try county.store.query("SELECT count(*) AS n FROM alerts").first?["n"] == String(first.newAlerts))
        #expect(try county.store.query("SELECT count(*) AS n FROM cases").first?["n"] == String(first.newCases))
    }

    @Test func aHouseholdsAlertsInAPeriodMergeIntoOneCase() throws {
        let store = try SQLiteStore(path: scratchDirectory().appendingPathComponent("h.sqlite").path)
        func alert(_ rule: String, _ sev: Rule.Severity) -> Alert {
            Alert(rule: rule, title: rule, severity: sev, subjectKind: .household, subjectID: "H1", householdID: "H1",
                  villageCode: "411081100201", townshipCode: "411081100", period: "2026-10", message: "m", evidence: [], ruleVersion: "v")
        }
        let saved = try store.saveAlerts([alert("roster_stale", .low), alert("medical_burden", .high)])
        #expect(saved.newAlerts == 2 && saved.newCases == 1)
        let cases = try store.query("SELECT severity, township_code FROM cases")
        #expect(cases == [["severity": "high", "township_code": "411081100"]])
    }

    @Test func afterAPullOnlyTouchedSubjectsAreEvaluated() throws {
        let county = try Self.pulledCounty()
        let engine = try county.engine()
        let touched = try #require(try engine.subjects(touchedBy: county.runs["canlian"]!))
        // A run that touched more subjects than the limit: everything is evaluated instead.
        #expect(try engine.subjects(touchedBy: county.runs["canlian"]!, limit: touched.count - 1) == nil)
        let incremental = try engine.evaluate(period: county.sim.county.config.period, only: touched)
        let full = try engine.evaluate(period: county.sim.county.config.period)
        // Every alert that depends on 残联 records is found by the incremental pass…
        let severe = full.filter { $0.rule == "severe_disability_new" }
        #expect(!severe.isEmpty && severe.allSatisfy { a in incremental.contains { $0 == a } })
        // …and it evaluates far fewer subjects than the whole county.
        #expect(incremental.count < full.count)
        #expect(touched.count < county.sim.truth.rosterHouseholds)
    }

    @Test func aBrokenRuleFileIsRefusedWithLineAndColumnAndTheOthersKeepWorking() throws {
        let dir = scratchDirectory("rules")
        let good = """
        rule: roster_stale
        subject: household
        when: "months_between(household.updated_on, period_end) > 12"
        message: "最后更新 {household.updated_on}"
        """
        let broken = """
        rule: broken
        subject: household
        uses:
          claims: { type: medical_claim, window: 12 months, date: settled_at }
        when: "sum(claims.self_pey) > household.income_per_persn"
        message: "x {count(claimz)}"
        """
        try good.write(to: dir.appendingPathComponent("roster_stale.yaml"), atomically: true, encoding: .utf8)
        try broken.write(to: dir.appendingPathComponent("broken.yaml"), atomically: true, encoding: .utf8)
        let (rules, _, problems) = RuleLoader.loadDirectory(dir, types: shippedTypes)
        #expect(rules.map(\.name) == ["roster_stale"])
        let texts = problems.map(\.description)
        #expect(texts.contains { $0.hasSuffix("broken.yaml:5:19: when：记录集 claims 没有字段 \"self_pey\"，是否应为 \"self_pay\"？") }, "\(texts)")
        #expect(texts.contains { $0.hasSuffix("broken.yaml:6:20: message：count() 中的 \"claimz\" 不是已声明的记录集或其字段，是否应为 \"claims\"？（记录集在 uses 中声明）") }, "\(texts)")
        // A text compared with a number is caught when the file loads.
        #expect(throws: DiagnosticList.self) {
            try RuleLoader(types: shippedTypes, params: RuleParams()).load(text: "rule: x\nsubject: household\nwhen: \"household.category > 5\"\nmessage: m\n", file: "x.yaml")
        }
    }

    @Test func thresholdsFollowTheYear() throws {
        let p = try RuleParams.load(text: "params:\n  income_threshold: { by_year: { 2021: 6000, 2024: 7000 } }\n", file: "p.yaml")
        #expect(p.value("income_threshold", year: 2021) == 6000)
        #expect(p.value("income_threshold", year: 2023) == 6000)
        #expect(p.value("income_threshold", year: 2026) == 7000)
    }
}

/// Filters pushed into SQL never drop a row the rule's own filter keeps.
@Suite struct SQLFilterTests {
    @Test func translatedFiltersKeepASupersetOfTheRows() throws {
        let type = shippedTypes["medical_claim"]!
        let dir = scratchDirectory("sqlfilter")
        let csv = "结算ID,身份证号,结算时间,医疗费总额,个人负担,类别\n" + (0..<60).map { i in
            "S\(i),\(makeID("411081", "19600101", i + 1)),2026-10-\(String(format: "%02d", i % 28 + 1)) 10:00:00,\(50000 + i * 1000),\(i % 5 == 0 ? "" : String(i * 700)),\(["21", "11", "", "14"][i % 4])"
        }.joined(separator: "\n")
        try csv.write(to: dir.appendingPathComponent("c.csv"), atomically: true, encoding: .utf8)
        let m = try loader().load(text: """
            source: c
            connector: file
            fetch: { path: c.csv }
            format: csv
            record: medical_claim
            fields:
              settlement_id: 结算ID
              id_number: 身份证号
              settled_at: 结算时间
              total_cost: 医疗费总额
              self_pay: 个人负担
              med_type: { from: 类别, map: { "21": 住院, "11": 门诊, "14": 门诊慢特病 } }
            """, file: "c.yaml", directory: dir.path)
        let store = try SQLiteStore(path: dir.appendingPathComponent("h.sqlite").path)
        _ = try Pull(mapping: m, connector: try loader().connector(for: m), store: store).run(period: Period("2026-10")!)
        // What a rule's walk of the table reads with the translated filter (and without one).
        func scanned(_ filter: RecordFilter?) throws -> [[String: Value]] {
            try store.reading { reader in
                var out: [[String: Value]] = []
                try reader.scan(type, fields: type.fields.map(\.name), where: filter, orderBy: []) { out.append($0); return true }
                return out
            }
        }
        let all = try scanned(nil)
        #expect(all.count == 60)
        let scope = FieldScope(Dictionary(uniqueKeysWithValues: type.fields.map { ($0.name, ExprType.of($0.type)) }))
        for text in ["self_pay >= 20000", "self_pay != 7000", "med_type in ['住院', '门诊'] and total_cost > 70000",
                     "med_type == '门诊慢特病' or self_pay < 3000", "not (self_pay > 1000) and total_cost > 0", "20000 <= self_pay",
                     "empty(med_type) or total_cost >= 100000"] {
            let e = try ExpressionParser.parse(text)
            try ExpressionChecker.check(e, in: scope)
            let kept = Set(all.filter { r in ExpressionEvaluator.truth(ExpressionEvaluator.evaluate(e) { r[$0] ?? .null }) == true }.compactMap { $0["_id"]?.number })
            let sql = RecordFilter.narrowing(e, type)
            let selected = Set(try scanned(sql).compactMap { $0["_id"]?.number })
            #expect(kept.isSubset(of: selected), "\(text): SQL dropped rows the filter keeps")
            if text == "self_pay >= 20000" { #expect(sql != nil && selected == kept) }
        }
    }
}

/// Events with a start and an end (`until:`): one that has not ended counts up to the end of
/// the period, and one that began before the window but overlaps it counts too — no invented
/// end date needed in the data.
@Suite struct OpenEventTests {
    @Test func anOutageStillGoingOnCountsUpToThePeriodsEnd() throws {
        let dir = scratchDirectory("events")
        try """
        事件编号,村代码,开始,恢复
        E1,411081100201,2026-10-05 08:00:00,
        E2,411081100202,2026-10-05 08:00:00,2026-10-10 08:00:00
        E3,411081100203,2025-12-01 08:00:00,
        E4,411081100204,2025-11-01 08:00:00,2025-12-20 08:00:00
        """.write(to: dir.appendingPathComponent("water.csv"), atomically: true, encoding: .utf8)
        let m = try loader().load(text: """
            source: water
            connector: file
            fetch: { path: water.csv }
            format: csv
            record: water_supply_event
            fields: { event_id: 事件编号, village_code: 村代码, started_at: 开始, ended_at: 恢复 }
            """, file: "water.yaml", directory: dir.path)
        let store = try SQLiteStore(path: dir.appendingPathComponent("h.sqlite").path)
        _ = try Pull(mapping: m, connector: try loader().connector(for: m), store: store).run(period: Period("2026-10")!)
        let params = try RuleParams.load(text: "params:\n  limit_days: 20\n", file: "p.yaml")
        let rule = try RuleLoader(types: shippedTypes, params: params).load(text: """
            rule: long_outage
            title: 长时间停水
            severity: medium
            subject: group
            by: village_code
            uses:
              outages:
                type: water_supply_event
                window: year
                date: started_at
                until: ended_at
                compute:
                  days: "days_between(started_at, coalesce(ended_at, period_end))"
            when: "sum(outages.days) > limit_days"
            message: "停水 {sum(outages.days)} 天，原因 {latest(outages.cause)}"
            """, file: "long_outage.yaml")
        let engine = try RuleEngine(rules: [rule], params: params, types: shippedTypes, store: store)
        let alerts = try engine.evaluate(period: Period("2026-10")!)
        // E1: open since Oct 5 → 26 days to Oct 31. E2: closed after 5. E3: open since last
        // December, overlaps this year → 334 days. E4: over before this year began → not counted.
        #expect(Set(alerts.map(\.subjectID)) == ["411081100201", "411081100203"], "\(alerts.map { ($0.subjectID, $0.message) })")
        // No cause was given: the message says which field is missing instead of a bare dash.
        #expect(alerts.first { $0.subjectID == "411081100201" }?.message == "停水 26 天，原因 （缺“原因”）")
    }
}

@Suite struct OutsideRosterRoutingTests {
    @Test func aCaseGoesToTheMostPreciseRegionItsRecordsCarryElseToTheCountyQueue() throws {
        let dir = scratchDirectory("routing")
        // Three people outside the roster (no roster pulled at all): one claim with a village
        // code, one with a township code, one with only the county's code.
        try """
        结算ID,身份证号,姓名,结算时间,总额,自付,参保地
        S1,110101199003077774,甲,2026-10-05 09:00:00,90000,40000,411081101203
        S2,110101199003078558,乙,2026-10-06 09:00:00,90000,40000,411081102
        S3,110101199003079235,丙,2026-10-07 09:00:00,90000,40000,411081
        S4,110101199003071110,丁,2026-10-07 09:00:00,90000,40000,411081102000
        S5,110101199003072228,戊,2026-10-07 09:00:00,90000,40000,411081000000
        """.write(to: dir.appendingPathComponent("claims.csv"), atomically: true, encoding: .utf8)
        let m = try loader().load(text: """
            source: claims
            connector: file
            fetch: { path: claims.csv }
            format: csv
            record: medical_claim
            fields: { settlement_id: 结算ID, id_number: 身份证号, name: 姓名, settled_at: 结算时间, total_cost: 总额, self_pay: 自付, insured_region: 参保地 }
            """, file: "claims.yaml", directory: dir.path)
        let store = try SQLiteStore(path: dir.appendingPathComponent("h.sqlite").path)
        let run = try Pull(mapping: m, connector: try loader().connector(for: m), store: store).run(period: Period("2026-10")!)
        #expect(run.counts.quarantined == 0)
        let shipped = RuleLoader.loadDirectory(repoRoot.appendingPathComponent("Mappings/rules"), types: shippedTypes)
        let rule = try #require(shipped.rules.first { $0.name == "medical_outside_roster" })
        let alerts = try RuleEngine(rules: [rule], params: shipped.params, types: shippedTypes, store: store).evaluate(period: Period("2026-10")!)
        let by = Dictionary(uniqueKeysWithValues: alerts.map { ($0.subjectID, $0) })
        #expect(by["110101199003077774"]?.villageCode == "411081101203" && by["110101199003077774"]?.townshipCode == "411081101")
        #expect(by["110101199003078558"]?.villageCode == nil && by["110101199003078558"]?.townshipCode == "411081102")
        #expect(by["110101199003079235"]?.townshipCode == nil, "a county code places nothing: the case waits for the county")
        // Codes padded with zeros name the larger area they stand for.
        #expect(by["110101199003071110"]?.townshipCode == "411081102" && by["110101199003071110"]?.villageCode == nil)
        #expect(by["110101199003072228"]?.townshipCode == nil)
    }
}
