import Foundation
import Testing
@testable import Hub
@testable import HubSQLite
import Connectors

/// End-to-end pulls from files into real SQLite files.
@Suite struct PullTests {
    static let mappingText = """
    source: claims
    connector: file
    fetch: { path: "claims-{period}.csv" }
    format: csv
    csv: { header_row: 2 }
    record: medical_claim
    key: [settlement_id]
    fields:
      settlement_id: 结算ID
      id_number: 身份证号
      settled_at: { from: 结算时间, format: "yyyy-MM-dd HH:mm:ss" }
      total_cost: 医疗费总额
      self_pay: 个人负担
    keep_if: "total_cost > 0"
    """

    struct Fixture {
        let dir: URL
        let store: SQLiteStore
        let mapping: Mapping
        func write(_ rows: [String]) throws {
            let text = "某市医保局 结算明细\n结算ID,身份证号,结算时间,医疗费总额,个人负担\n" + rows.joined(separator: "\n") + "\n"
            try text.write(to: dir.appendingPathComponent("claims-2026-10.csv"), atomically: true, encoding: .utf8)
        }
        func pull() throws -> PullResult {
            try Pull(mapping: mapping, connector: try loader().connector(for: mapping), store: store).run(period: Period("2026-10")!)
        }
        var claims: [[String: Value]] { try! store.records(of: shippedTypes["medical_claim"]!, source: "claims") }
    }

    func fixture() throws -> Fixture {
        let dir = scratchDirectory("pull")
        let m = try loader().load(text: Self.mappingText, file: "claims.yaml", directory: dir.path)
        return Fixture(dir: dir, store: try SQLiteStore(path: dir.appendingPathComponent("hub.sqlite").path), mapping: m)
    }

    static let good = (1...8).map { i in "S\(i),\(makeID("411081", "19600101", i)),2026-10-0\(i) 09:00:00,\(50000 + i * 1000).50,\(20000 + i)" }
    static let bad = [
        "B1,411081196001010010,2026-10-01 09:00:00,60000,100",        // wrong check character
        "B2,\(makeID("411081", "19600101", 21)),2026-13-45 09:00:00,60000,100",  // impossible date
        "B3,,2026-10-01 09:00:00,60000,100",                             // missing ID
        "B4,\(makeID("411081", "19600101", 22)),2026-10-01 09:00:00,六万,100",  // not money
    ]

    @Test func goodRowsStoredBadRowsQuarantinedRepeatAddsNothingChangeUpdatesOne() throws {
        let f = try fixture()
        try f.write(Self.good + Self.bad + ["R1,\(makeID("411081", "19600101", 30)),2026-10-01 09:00:00,0,0"])
        let first = try f.pull()
        #expect(first.counts.read == 13)
        #expect(first.counts.inserted == 8)
        #expect(first.counts.quarantined == 4)
        #expect(first.counts.skipped == 1)   // keep_if: total_cost > 0
        #expect(f.claims.count == 8)

        let q = try f.store.quarantine(runID: first.runID)
        #expect(q.map(\.row) == [11, 12, 13, 14])
        #expect(q[0].reasons.map(\.text) == ["身份证号（id_number）：身份证号校验位错误（应为 \(makeID("411081", "19600101", 1).last!)，实为 0）"])
        #expect(q[1].reasons.first?.message == "日期 2026-13-45 09:00:00 无效（格式 yyyy-MM-dd HH:mm:ss）")
        #expect(q[2].reasons.first?.message == "缺少必填字段 身份证号")
        #expect(q[3].reasons.first?.column == "医疗费总额")
        #expect(q[0].raw.first == ["结算ID", "B1"])   // the raw row is kept to send back

        // The same delivery again: nothing new, nothing changed, no duplicate quarantine entries.
        let before = f.claims
        let again = try f.pull()
        #expect(again.counts.inserted == 0 && again.counts.updated == 0 && again.counts.unchanged == 8)
        #expect(f.claims.map { $0.filter { $0.key != "_run_id" } } == before.map { $0.filter { $0.key != "_run_id" } })
        #expect(try f.store.quarantine(runID: again.runID).count == 4)
        #expect(try f.store.query("SELECT count(*) AS n FROM quarantine").first?["n"] == "4")

        // The department corrects one amount: one record updated, the change kept.
        var corrected = Self.good
        corrected[2] = corrected[2].replacingOccurrences(of: ",20003", with: ",18000.40")
        try f.write(corrected + Self.bad)
        let third = try f.pull()
        #expect(third.counts.updated == 1 && third.counts.unchanged == 7 && third.counts.inserted == 0)
        let changes = try f.store.changes(of: shippedTypes["medical_claim"]!, source: "claims")
        #expect(changes.map { [$0.key, $0.field, $0.before, $0.after] } == [["S3", "self_pay", "20003.00", "18000.40"]])
        #expect(changes.first?.runID == third.runID)
        #expect(f.claims.first { $0["settlement_id"] == .text("S3") }?["self_pay"] == .money(1_800_040))
    }

    /// A re-pull that receives the same bytes carries the earlier results over instead of
    /// decoding again — but only when nothing else could make a re-read differ: the same
    /// mapping and types, and no later pull of the source in between.
    @Test func identicalDeliveryIsCarriedOverOnlyWhenNothingElseChanged() throws {
        let f = try fixture()
        try f.write(Self.good + Self.bad)
        let first = try f.pull()
        let again = try f.pull()
        #expect(again.counts == { var c = first.counts; c.unchanged = c.inserted; c.inserted = 0; return c }())
        // Carried over: the document is remembered with the same fingerprint, the quarantined
        // rows belong to the new run too.
        let docs = try f.store.query("SELECT run_id, bytes, fingerprint, stored, quarantined FROM run_documents ORDER BY run_id")
        #expect(docs.count == 2 && docs[0]["fingerprint"] == docs[1]["fingerprint"] && docs[1]["stored"] == "8" && docs[1]["quarantined"] == "4")
        #expect(try f.store.quarantine(runID: again.runID).map(\.row) == [11, 12, 13, 14])

        // The mapping changes (a stricter keep_if): the same bytes are mapped again, not carried over.
        let stricter = try loader().load(text: Self.mappingText.replacingOccurrences(of: "keep_if: \"total_cost > 0\"", with: "keep_if: \"total_cost > 54000\""),
                                         file: "claims.yaml", directory: f.dir.path)
        let remapped = try Pull(mapping: stricter, connector: try loader().connector(for: stricter), store: f.store).run(period: Period("2026-10")!)
        #expect(remapped.counts.skipped == 3 && remapped.counts.unchanged == 5)

        // A later month's pull changes a record; re-pulling October's identical file must set it
        // back as a real re-read would, so nothing is carried over across that pull.
        let november = Self.good.map { $0.replacingOccurrences(of: "2026-10-0", with: "2026-11-0") }
        try ("某市医保局 结算明细\n结算ID,身份证号,结算时间,医疗费总额,个人负担\n" + november.joined(separator: "\n") + "\n")
            .write(to: f.dir.appendingPathComponent("claims-2026-11.csv"), atomically: true, encoding: .utf8)
        let nov = try Pull(mapping: stricter, connector: try loader().connector(for: stricter), store: f.store).run(period: Period("2026-11")!)
        #expect(nov.counts.updated == 5)
        let back = try Pull(mapping: stricter, connector: try loader().connector(for: stricter), store: f.store).run(period: Period("2026-10")!)
        #expect(back.counts.updated == 5)
        #expect(f.claims.first { $0["settlement_id"] == .text("S8") }?["settled_at"]?.description == "2026-10-08 09:00:00")
    }

    @Test func aFailedPullLeavesTheStoreAsItWas() throws {
        let f = try fixture()
        try f.write(Self.good)
        _ = try f.pull()
        let before = f.claims

        // The department renamed a column: the pull fails with the column named, the store is untouched.
        try ("某市医保局\n结算ID,证件号码,结算时间,医疗费总额,个人负担\n" + Self.good.map { $0.replacingOccurrences(of: ".50", with: ".70") }.joined(separator: "\n"))
            .write(to: f.dir.appendingPathComponent("claims-2026-10.csv"), atomically: true, encoding: .utf8)
        #expect {
            _ = try f.pull()
        } throws: { e in
            let m = (e as? PullError)?.message ?? ""
            return m.contains("身份证号") && m.contains("证件号码")
        }
        #expect(f.claims == before)
        let runs = try f.store.runs(source: "claims", limit: 5)
        #expect(runs.first?.status == .failed)
        #expect(runs.first?.error?.contains("身份证号") == true)

        // No file delivered yet: a clear, retryable error.
        try FileManager.default.removeItem(at: f.dir.appendingPathComponent("claims-2026-10.csv"))
        #expect {
            _ = try f.pull()
        } throws: { ($0 as? PullError)?.retryable == true && ($0 as? PullError)?.message.contains("文件不存在") == true }
        #expect(f.claims == before)
    }

    @Test func oneRosterRowYieldsAHouseholdAndAPerson() throws {
        let dir = scratchDirectory("roster")
        let text = """
        source: roster
        connector: file
        fetch: { path: roster.csv }
        format: csv
        records:
          - record: household
            fields:
              household_id: 户编号
              village_code: 行政村代码
              category: { from: 户类型, map: { 脱贫户: 脱贫户, 一般户: 一般农户 } }
              size: 家庭人口数
              income_per_person: 人均纯收入
          - record: person
            fields:
              id_number: 证件号码
              household_id: 户编号
              name: 姓名
              relation: 与户主关系
        """
        let rows = [
            "H001,411081100201,脱贫户,3,6500,\(makeID("411081", "19700101", 11)),张大,户主",
            "H001,411081100201,脱贫户,3,6500,\(makeID("411081", "19720101", 12)),李二,配偶",
            "H001,411081100201,脱贫户,3,6500,\(makeID("411081", "20000101", 13)),张三,之子",
            "H002,411081100202,一般户,1,12000,\(makeID("411081", "19500101", 15)),王五,户主",
        ]
        try ("户编号,行政村代码,户类型,家庭人口数,人均纯收入,证件号码,姓名,与户主关系\n" + rows.joined(separator: "\n"))
            .write(to: dir.appendingPathComponent("roster.csv"), atomically: true, encoding: .utf8)
        let m = try loader().load(text: text, file: "roster.yaml", directory: dir.path)
        let store = try SQLiteStore(path: dir.appendingPathComponent("hub.sqlite").path)
        let r = try Pull(mapping: m, connector: try loader().connector(for: m), store: store).run(period: Period("2026-10")!)
        #expect(r.counts.read == 4)
        #expect(r.counts.inserted == 6)     // 2 households + 4 persons
        #expect(r.counts.unchanged == 2)    // the household repeated on its members' rows
        let households = try store.records(of: shippedTypes["household"]!, source: "roster")
        #expect(households.map { $0["category"] } == [.text("脱贫户"), .text("一般农户")])
        #expect(households.first?["income_per_person"] == .money(650_000))
        #expect(try store.records(of: shippedTypes["person"]!, source: "roster").count == 4)
    }

    @Test func theShippedSampleFeedPulls() throws {
        let dir = scratchDirectory("sample")
        let m = try loader().load(file: repoRoot.appendingPathComponent("Mappings/medical-claims.yaml"))
        let store = try SQLiteStore(path: dir.appendingPathComponent("hub.sqlite").path)
        // The 医保 mapping reads a drop folder; point it at the bundled sample.
        let env = ["YIBAO_DROP_DIR": repoRoot.appendingPathComponent("Mappings/samples").path]
        let r = try Pull(mapping: m, connector: try loader().connector(for: m), store: store).run(period: Period("2026-10")!, environment: env)
        // scripts/make-sample-feed.py: 40 settlements (variants included), 1 reversal, 6 bad rows.
        #expect(r.counts.read == 47)
        #expect(r.counts.inserted == 40)
        #expect(r.counts.skipped == 1)
        #expect(r.counts.quarantined == 6)
        let ids = try store.records(of: shippedTypes["medical_claim"]!, source: nil).compactMap { $0["id_number"]?.description }
        #expect(ids.contains("11010519491231002X"))                // lowercase x normalised
        #expect(ids.contains { $0.hasPrefix("41102319560308123") })  // 15 digits → 18
        #expect(ids.allSatisfy { (try? ResidentID(parsing: $0)) != nil })
    }
}

extension PullTests {
    /// Two rows with the same key and different content in one pull: the first stands, the
    /// second is quarantined with the row it clashes with; a repeat of the first is just unchanged.
    @Test func aKeyRepeatedWithOtherContentInOnePullIsQuarantined() throws {
        let f = try fixture()
        let id = makeID("411081", "19600101", 3)
        try f.write(["S1,\(id),2026-10-01 09:00:00,60000,100", "S2,\(id),2026-10-02 09:00:00,70000,200",
                     "S1,\(id),2026-10-01 09:00:00,99999,100", "S1,\(id),2026-10-01 09:00:00,60000,100"])
        let r = try f.pull()
        #expect(r.counts.read == 4 && r.counts.inserted == 2 && r.counts.unchanged == 1 && r.counts.quarantined == 1, "\(r.counts)")
        let q = try f.store.quarantine(runID: r.runID)
        #expect(q.count == 1 && q[0].row == 5 && q[0].reasons.first?.message.contains("与第 3 行键相同") == true, "\(q.map { ($0.row, $0.reasons.map(\.text)) })")
        let s1 = f.claims.first { $0["settlement_id"] == .text("S1") }
        #expect(s1?["total_cost"] == .money(6_000_000), "the first row stands")
        // …and the run reports it for the data-quality alert.
        #expect(r.conflicts.map(\.rows) == [1] && r.conflicts.first?.example == "S1", "\(r.conflicts)")
        // Next month's file lists S1 as stored (unchanged), then again with other content: still
        // a conflict, though the stored record was not written by this run.
        try f.write(["S1,\(id),2026-10-01 09:00:00,60000,100", "S3,\(id),2026-10-03 09:00:00,80000,300", "S1,\(id),2026-10-01 09:00:00,12345,100"])
        let again = try f.pull()
        #expect(again.counts.unchanged == 1 && again.counts.inserted == 1 && again.counts.updated == 0 && again.counts.quarantined == 1, "\(again.counts)")
        let q2 = try f.store.quarantine(runID: again.runID)
        #expect(q2.first?.reasons.first?.message.contains("与第 3 行键相同") == true, "\(q2.map { $0.reasons.map(\.text) })")
        #expect(f.claims.first { $0["settlement_id"] == .text("S1") }?["total_cost"] == .money(6_000_000), "the stored record stands")
    }
}
