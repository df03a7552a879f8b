import Foundation
import Testing
@testable import Hub
import HubSQLite
import Connectors
import SimCounty

/// The raw documents pulls read are kept (once per content, checked on the way back, pruned
/// past retention); `Replay` reads a month again through changed mappings or rules in a copy
/// of the store and lists the alert difference, changing nothing live; and a department's
/// correction of a past month re-evaluates that month alone.
@Suite(.serialized) struct ArchiveReplayTests {
    struct County {
        let sim: Simulator
        let dir: URL
        let store: SQLiteStore
        let archive: DocumentArchive
        let rules: [Rule]
        let params: RuleParams
        var runs: [String: Int64] = [:]
        var environment: [String: String] { sim.environment(dropDirectory: dir) }
        var period: Period { sim.county.config.period }
    }

    /// Simulates the county and pulls every shipped mapping for its month, archiving what is read.
    static func pulledCounty(scale: Double = 0.05, extraClaimMonths: [Period] = []) throws -> County {
        var c = CountyConfig(); c.scale = scale; c.seed = 20261001
        let sim = try Simulator(config: c)
        let dir = scratchDirectory("archive")
        try sim.write(to: dir)
        try sim.writeDrops(to: dir, months: extraClaimMonths)
        try sim.start()
        let store = try SQLiteStore(path: dir.appendingPathComponent("hub.sqlite").path)
        let archive = DocumentArchive(folder: dir.appendingPathComponent("hub.archive"))
        let mdir = repoRoot.appendingPathComponent("Mappings")
        let (rules, params, problems) = RuleLoader.loadDirectory(mdir.appendingPathComponent("rules"), types: shippedTypes)
        #expect(problems.isEmpty, "\(problems)")
        var county = County(sim: sim, dir: dir, store: store, archive: archive, rules: rules, params: params)
        for f in try FileManager.default.contentsOfDirectory(atPath: mdir.path).filter({ $0.hasSuffix(".yaml") }).sorted() {
            let m = try loader().load(file: mdir.appendingPathComponent(f))
            county.runs[m.source] = try pull(m, county, period: c.period).runID
        }
        return county
    }

    static func pull(_ m: Mapping, _ county: County, period: Period) throws -> PullResult {
        var pull = Pull(mapping: m, connector: try loader().connector(for: m), store: county.store)
        pull.archive = county.archive
        return try pull.run(period: period, environment: county.environment)
    }

    static func mapping(_ source: String, in dir: URL = repoRoot.appendingPathComponent("Mappings")) throws -> Mapping {
        try loader().load(file: dir.appendingPathComponent(source + ".yaml"))
    }

    static func archivedBytes(_ county: County, _ source: String, _ fingerprint: String, period: Period? = nil) throws -> Data {
        var out = Data()
        try county.archive.read(source: source, period: period ?? county.period, fingerprint: fingerprint) { out.append(contentsOf: $0) }
        return out
    }

    /// What a user of the live store could see change: alerts, cases, runs, records.
    static func liveState(_ store: SQLiteStore) throws -> [[String: String]] {
        try store.query("SELECT rule, subject_id, message, case_id FROM alerts ORDER BY id")
            + store.query("SELECT id, status, severity FROM cases ORDER BY id")
            + store.query("SELECT id, status FROM runs ORDER BY id")
            + store.query("SELECT count(*) AS n, sum(self_pay) AS s FROM rec_medical_claim")
    }

    @Test func eachDocumentReadIsArchivedOnceAndComesBackAsDelivered() throws {
        let county = try Self.pulledCounty()
        defer { county.sim.stop() }
        for (source, run) in county.runs {
            let docs = try county.store.documents(ofRun: run)
            #expect(!docs.isEmpty, "\(source): the run lists what it read")
            for d in docs {
                #expect(county.archive.contains(source: source, period: county.period, fingerprint: d.fingerprint), "\(source) \(d.name) is archived")
                #expect(try Self.archivedBytes(county, source, d.fingerprint).count == d.bytes)
            }
        }
        // The 医保 file comes back byte for byte as it was dropped.
        let claims = try #require(try county.store.documents(ofRun: county.runs["medical-claims"]!).first)
        let dropped = try Data(contentsOf: county.dir.appendingPathComponent("drop/yibao/\(claims.name)"))
        #expect(try Self.archivedBytes(county, "medical-claims", claims.fingerprint) == dropped)
        // Compressed: the roster workbook and the claims are well under their size.
        let months = county.archive.months()
        #expect(months.count == county.runs.count)
        #expect(months.first { $0.source == "medical-claims" }!.bytes < claims.bytes / 2)

        // Pulling everything again (identical bytes, carried over) adds no file.
        let before = months.map(\.files)
        for source in county.runs.keys.sorted() { _ = try Self.pull(try Self.mapping(source), county, period: county.period) }
        #expect(county.archive.months().map(\.files) == before)

        // A corrected delivery is kept beside the first.
        var changed = dropped
        changed.append(contentsOf: Array("\r\n".utf8))
        try changed.write(to: county.dir.appendingPathComponent("drop/yibao/\(claims.name)"))
        let r = try Self.pull(try Self.mapping("medical-claims"), county, period: county.period)
        let second = try #require(try county.store.documents(ofRun: r.runID).first)
        #expect(second.fingerprint != claims.fingerprint)
        #expect(county.archive.months().first { $0.source == "medical-claims" }!.files == 2)
        #expect(try Self.archivedBytes(county, "medical-claims", second.fingerprint) == changed)

        // An archived file that was altered is refused, naming the file.
        let path = county.archive.url(source: "medical-claims", period: county.period, fingerprint: claims.fingerprint)
        try FileManager.default.removeItem(at: path)
        try FileManager.default.copyItem(at: county.archive.url(source: "medical-claims", period: county.period, fingerprint: second.fingerprint), to: path)
        #expect {
            try Self.archivedBytes(county, "medical-claims", claims.fingerprint)
        } throws: { ($0 as? ArchiveError)?.description.contains("与指纹不符") == true && "\($0)".contains(path.lastPathComponent) }
    }

    @Test func monthsPastRetentionArePrunedAndTheRestStay() throws {
        let dir = scratchDirectory("prune")
        let archive = DocumentArchive(folder: dir, retentionMonths: 13)
        for p in ["2025-09", "2025-10", "2025-11", "2026-10"] {
            let w = try archive.writer(source: "medical-claims", period: Period(p)!)
            let bytes = Array("结算ID,金额\n\(p),1\n".utf8)
            try bytes.withUnsafeBytes { try w.write($0) }
            var f = StreamFingerprint(); bytes.withUnsafeBytes { f.update($0) }
            try w.finish(fingerprint: f.finish().1)
        }
        // On 2 December 2026, with 13 months kept: October 2025 and before go, November 2025 stays.
        let today = CivilDate(year: 2026, month: 12, day: 2)!
        #expect(archive.expired(today: today).map(\.period.description) == ["2025-09", "2025-10"])
        let gone = try archive.prune(today: today)
        #expect(gone.map(\.period.description) == ["2025-09", "2025-10"])
        #expect(archive.months().map(\.period.description) == ["2025-11", "2026-10"])
        // Kept for ever with 0.
        #expect(DocumentArchive(folder: dir, retentionMonths: 0).expired(today: today).isEmpty)
        // Pages of an API are read back in the order they were fetched.
        let pages = ["第 10 页", "第 2 页", "第 1 页", "b.csv", "a.csv"]
        #expect(pages.sorted { Replay.naturalKey($0).lexicographicallyPrecedes(Replay.naturalKey($1)) } == ["a.csv", "b.csv", "第 1 页", "第 2 页", "第 10 页"])
        // A source name cannot climb out of the folder.
        #expect(archive.url(source: "../etc", period: Period("2026-10")!, fingerprint: "x").path.hasPrefix(dir.path + "/"))
        #expect(!archive.url(source: "../etc", period: Period("2026-10")!, fingerprint: "x").path.contains("/../"))
    }

    @Test func replayListsWhatAChangedRuleOrMappingWouldRaiseAndWithdrawAndChangesNothingLive() throws {
        let county = try Self.pulledCounty()
        defer { county.sim.stop() }
        let engine = try RuleEngine(rules: county.rules, params: county.params, types: shippedTypes, store: county.store)
        _ = try engine.evaluateAndStore(period: county.period, into: county.store)
        let live = try Self.liveState(county.store)
        let shipped = repoRoot.appendingPathComponent("Mappings")

        func replay(mappings dir: URL) throws -> ReplayReport {
            let copy = scratchDirectory("replay-copy").appendingPathComponent("scratch.sqlite").path
            try county.store.copy(to: copy)
            let (rules, params, problems) = RuleLoader.loadDirectory(dir.appendingPathComponent("rules"), types: shippedTypes)
            #expect(problems.isEmpty, "\(problems)")
            let maps = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yaml") }
                .map { try loader().load(file: dir.appendingPathComponent($0)) }
            return try Replay(live: county.store, scratch: try SQLiteStore(path: copy), archive: county.archive, mappings: maps,
                              types: shippedTypes, rules: rules, params: params).run(period: county.period)
        }

        // Nothing changed: no difference, every source as it was read.
        let same = try replay(mappings: shipped)
        #expect(same.raised == 0 && same.withdrawn == 0 && same.changed == 0, "\(same.text)")
        #expect(same.sources.allSatisfy { $0.status == .unchanged }, "\(same.sources)")
        #expect(same.text.contains("预警没有差异"))

        // A lower line for outsiders' self-pay: the outsiders between the two lines are raised,
        // the ones above both have their message changed, nothing is withdrawn.
        let changedRules = scratchDirectory("replay-rules").appendingPathComponent("Mappings")
        try FileManager.default.copyItem(at: shipped, to: changedRules)
        let paramsFile = changedRules.appendingPathComponent("rules/params.yaml")
        let text = try String(contentsOf: paramsFile, encoding: .utf8)
        try #require(text.contains("value: 20000"))
        try text.replacingOccurrences(of: "value: 20000", with: "value: 10000").write(to: paramsFile, atomically: true, encoding: .utf8)
        let lower = try replay(mappings: changedRules)
        let outsiders = try #require(lower.ruleLines.first { $0.rule == "medical_outside_roster" })
        // Expected from the live store's claims: outsiders (no alert in the roster's households)
        // whose largest self-pay this month is at least 10,000 yuan.
        let before = try county.store.query("SELECT count(*) AS n FROM alerts WHERE rule = 'medical_outside_roster'").first!["n"]!
        #expect(outsiders.before == Int(before)!)
        #expect(outsiders.raised > 0 && outsiders.withdrawn == 0 && outsiders.changed == outsiders.before, "\(lower.text)")
        #expect(outsiders.raisedExamples.allSatisfy { $0.after!.contains("预警线 10,000 元") && $0.subject.contains("********") })
        #expect(lower.ruleLines.filter { $0.rule != "medical_outside_roster" }.allSatisfy { !$0.differs }, "\(lower.text)")

        // A mapping that now drops claims above a self-pay: the largest outsider claim's alert is withdrawn.
        let top = try #require(try county.store.query("""
            SELECT c.self_pay, a.subject_id FROM alerts a JOIN rec_medical_claim c ON c.id_number = a.subject_id
            WHERE a.rule = 'medical_outside_roster' ORDER BY c.self_pay DESC LIMIT 1
            """).first)
        let yuan = Int(top["self_pay"]!)! / 100
        let changedMapping = scratchDirectory("replay-mapping").appendingPathComponent("Mappings")
        try FileManager.default.copyItem(at: shipped, to: changedMapping)
        let claimsFile = changedMapping.appendingPathComponent("medical-claims.yaml")
        let yaml = try String(contentsOf: claimsFile, encoding: .utf8)
        try yaml.replacingOccurrences(of: #"keep_if: "total_cost > 0""#, with: #"keep_if: "total_cost > 0 and self_pay < \#(yuan)""#)
            .write(to: claimsFile, atomically: true, encoding: .utf8)
        let dropped = try replay(mappings: changedMapping)
        #expect(dropped.sources.first { $0.source == "medical-claims" }?.status == .replayed)
        #expect(dropped.sources.filter { $0.source != "medical-claims" }.allSatisfy { $0.status == .unchanged })
        let gone = try #require(dropped.ruleLines.first { $0.rule == "medical_outside_roster" })
        #expect(gone.withdrawn >= 1 && gone.raised == 0, "\(dropped.text)")
        #expect(gone.withdrawnExamples.contains { $0.subject == ResidentID.maskEmbedded(top["subject_id"]!) }, "\(dropped.text)")

        // A changed mapping that refuses the month's file stops the replay (its records are out
        // of the copy: going on would list false withdrawals) and says which source and why.
        let broken = scratchDirectory("replay-broken").appendingPathComponent("Mappings")
        try FileManager.default.copyItem(at: shipped, to: broken)
        let brokenFile = broken.appendingPathComponent("medical-claims.yaml")
        let text2 = try String(contentsOf: brokenFile, encoding: .utf8)
        try #require(text2.contains("settlement_id: [结算ID, setl_id]"))
        try text2.replacingOccurrences(of: "settlement_id: [结算ID, setl_id]", with: "settlement_id: 没有这一列")
            .write(to: brokenFile, atomically: true, encoding: .utf8)
        #expect { try replay(mappings: broken) } throws: { "\($0)".contains("medical-claims") && "\($0)".contains("重放中止") }

        // The live store saw none of it; the archive is what made it possible.
        #expect(try Self.liveState(county.store) == live)

        // Without the archive, a changed mapping cannot be replayed and says so.
        try FileManager.default.removeItem(at: county.archive.folder.appendingPathComponent("medical-claims"))
        let unarchived = try replay(mappings: changedMapping)
        #expect(unarchived.sources.first { $0.source == "medical-claims" }?.status == .notArchived)
        #expect(unarchived.text.contains("原始文件不在归档中"))
    }

    @Test func aCorrectedPastMonthIsReEvaluatedAloneKeepingWorkedCasesAndFieldHistory() throws {
        let september = Period("2026-09")!
        var county = try Self.pulledCounty(extraClaimMonths: [september])
        defer { county.sim.stop() }
        let claims = try Self.mapping("medical-claims")
        county.runs["medical-claims-09"] = try Self.pull(claims, county, period: september).runID
        for p in [september, county.period] {
            let engine = try RuleEngine(rules: county.rules, params: county.params, types: shippedTypes, store: county.store)
            _ = try engine.evaluateAndStore(period: p, into: county.store)
        }
        let october = try county.store.query("SELECT id, rule, subject_id, message, case_id FROM alerts WHERE period = '2026-10' ORDER BY id")
        let outsiders = try county.store.query("""
            SELECT a.subject_id, a.case_id FROM alerts a WHERE a.period = '2026-09' AND a.rule = 'medical_outside_roster' ORDER BY a.subject_id
            """)
        try #require(outsiders.count >= 2, "September has two outsiders to correct")
        let (worked, unworked) = (outsiders[0], outsiders[1])
        try county.store.unsafeExecuteForTests("""
            INSERT INTO case_events (case_id, at, username, action, detail) VALUES (\(worked["case_id"]!), '2026-10-08T09:00:00+08:00', 'zhang', 'note', '已入户');
            """)
        // Someone outside the roster with a September claim under the line.
        let roster = Set(try county.store.query("SELECT id_number FROM rec_person").compactMap { $0["id_number"] })
        let alerted = Set(outsiders.map { $0["subject_id"]! })
        let quiet = try #require(try county.store.query("SELECT id_number, settlement_id FROM rec_medical_claim WHERE _period = '2026-09' ORDER BY settlement_id")
            .first { !roster.contains($0["id_number"]!) && !alerted.contains($0["id_number"]!) })

        // The department's corrected September file: the two outsiders' self-pay was wrong
        // (100 yuan each), and the quiet one's was 30,000.
        let file = try #require(try FileManager.default.contentsOfDirectory(atPath: county.dir.appendingPathComponent("drop/yibao").path)
            .first { $0.contains(september.compact) })
        let url = county.dir.appendingPathComponent("drop/yibao/\(file)")
        var lines = try Data(contentsOf: url).split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { Array($0) }
        var edited = 0
        for i in lines.indices {
            var cells = lines[i].split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false).map { Array($0) }
            guard cells.count == 17 else { continue }
            let id = String(decoding: cells[3], as: UTF8.self)
            let amount: String
            if id == worked["subject_id"] || id == unworked["subject_id"] { amount = "100.00" }
            else if String(decoding: cells[0], as: UTF8.self) == quiet["settlement_id"] { amount = "30000.00" }
            else { continue }
            cells[15] = Array(amount.utf8)
            lines[i] = Array(cells.joined(separator: [UInt8(ascii: ",")]))
            edited += 1
        }
        #expect(edited >= 3)
        try Data(lines.joined(separator: [UInt8(ascii: "\n")])).write(to: url)

        // Pulled in November as `hubd pull` and the daemon do: the run's subjects, its month only.
        let r = try Self.pull(claims, county, period: september)
        #expect(r.counts.updated == edited)
        let engine = try RuleEngine(rules: county.rules, params: county.params, types: shippedTypes, store: county.store)
        let totals = try engine.evaluateAndStore(period: september, only: try engine.subjects(touchedBy: r.runID), into: county.store,
                                                 evaluatedRun: r.runID).totals
        #expect(totals.withdrawn == 1)
        #expect(totals.withdrawnList.map(\.subject) == [ResidentID.maskEmbedded(unworked["subject_id"]!)])
        #expect(totals.raisedList.contains { $0.rule == "medical_outside_roster" && $0.subject == ResidentID.maskEmbedded(quiet["id_number"]!) })
        let september09 = Set(try county.store.query("SELECT subject_id FROM alerts WHERE period = '2026-09' AND rule = 'medical_outside_roster'").map { $0["subject_id"]! })
        #expect(september09.contains(worked["subject_id"]!), "the case already worked keeps its alert")
        #expect(!september09.contains(unworked["subject_id"]!))
        #expect(september09.contains(quiet["id_number"]!))
        // October is untouched.
        #expect(try county.store.query("SELECT id, rule, subject_id, message, case_id FROM alerts WHERE period = '2026-10' ORDER BY id") == october)
        // The records keep their history: before and after of each corrected self-pay.
        let history = try county.store.query("SELECT record_key, before, after FROM record_changes WHERE run_id = ? AND field = 'self_pay'", [String(r.runID)])
        #expect(history.count == edited)
        #expect(history.contains { $0["record_key"] == quiet["settlement_id"] && $0["after"] == "30000.00" && $0["before"] != nil }, "\(history)")
        // Both deliveries of September are in the archive.
        #expect(county.archive.months().first { $0.source == "medical-claims" && $0.period == september }?.files == 2)
    }
}
