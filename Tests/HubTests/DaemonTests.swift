import Foundation
import Testing
@testable import Hub
@testable import HubSQLite
import Connectors
import SimCounty

@Suite struct ScheduleTests {
    /// 2026-11-03 02:00 in Asia/Shanghai.
    func cst(_ y: Int, _ mo: Int, _ d: Int, _ h: Int = 0, _ mi: Int = 0) -> Date {
        let days = CivilDate(year: y, month: mo, day: d)!.daysSinceEpoch
        return Date(timeIntervalSince1970: Double(days * 86400 + h * 3600 + mi * 60 - 8 * 3600))
    }

    @Test func monthlyWeeklyDailyAndCron() throws {
        let monthly = try Schedule("monthly on day 3 at 02:00")
        #expect(monthly.next(after: cst(2026, 11, 1)) == cst(2026, 11, 3, 2))
        #expect(monthly.next(after: cst(2026, 11, 3, 2)) == cst(2026, 12, 3, 2))
        #expect(monthly.next(after: cst(2026, 12, 20)) == cst(2027, 1, 3, 2))
        let weekly = try Schedule("weekly on monday at 06:00")
        #expect(weekly.next(after: cst(2026, 11, 23, 7)) == cst(2026, 11, 30, 6))   // 2026-11-23 is a Monday
        #expect(weekly.next(after: cst(2026, 11, 23, 5)) == cst(2026, 11, 23, 6))
        #expect(try Schedule("daily at 01:30").next(after: cst(2026, 2, 28, 23)) == cst(2026, 3, 1, 1, 30))
        let cron = try Schedule("cron: 15 */6 1,15 * *")
        #expect(cron.next(after: cst(2026, 11, 1, 6, 16)) == cst(2026, 11, 1, 12, 15))
        #expect(cron.next(after: cst(2026, 11, 1, 18, 16)) == cst(2026, 11, 15, 0, 15))
        // Day of month and day of week both given: either matches, as in cron.
        #expect(try Schedule("0 9 1 * 1").next(after: cst(2026, 11, 24)) == cst(2026, 11, 30, 9))
        #expect(throws: Schedule.Invalid.self) { try Schedule("monthly on the 3rd") }
        #expect(throws: Schedule.Invalid.self) { try Schedule("cron: 61 * * * *") }
    }

    @Test func theLatestSlotBeforeAMomentIsTheOneOwed() throws {
        let monthly = try Schedule("monthly on day 3 at 02:00")
        // The server was off from August to late November: only the latest slot is owed.
        #expect(monthly.previous(atOrBefore: cst(2026, 11, 20)) == cst(2026, 11, 3, 2))
    }

    @Test func backoffIsBoundedInCountAndTotalTime() {
        let b = Backoff(base: 60, cap: 600, maxAttempts: 6, maxTotal: 1400)
        var waited = 0.0
        var delays: [Double] = []
        for attempt in 2...10 {
            guard let d = b.delay(beforeAttempt: attempt, waitedSoFar: waited, random: 1) else { break }
            delays.append(d); waited += d
        }
        #expect(delays == [60, 120, 240, 480])        // doubling; the next (600) would pass the 1400 s total
        #expect(waited <= 1400)
        #expect(b.delay(beforeAttempt: 7, waitedSoFar: 0, random: 1) == nil)   // never past max attempts
        #expect(b.delay(beforeAttempt: 2, waitedSoFar: 0, random: 0) == 30)     // jitter: between half and all
        let capped = Backoff(base: 60, cap: 100, maxAttempts: 20, maxTotal: 1e9)
        #expect(capped.delay(beforeAttempt: 10, waitedSoFar: 0, random: 1) == 100)
    }
}

@Suite(.serialized) struct DaemonTests {
    func cst(_ y: Int, _ mo: Int, _ d: Int, _ h: Int = 0) -> Date { ScheduleTests().cst(y, mo, d, h) }

    /// A mappings folder with the shipped types and one monthly file feed.
    func setup(_ feedRows: Int = 5) throws -> (dir: URL, store: SQLiteStore, daemon: Daemon) {
        let dir = scratchDirectory("daemon")
        let m = dir.appendingPathComponent("Mappings")
        try FileManager.default.createDirectory(at: m.appendingPathComponent("rules"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: repoRoot.appendingPathComponent("Mappings/types"), to: m.appendingPathComponent("types"))
        try mapping(version: 1).write(to: m.appendingPathComponent("claims.yaml"), atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("drop"), withIntermediateDirectories: true)
        for p in ["2026-09", "2026-10", "2026-11"] { try feed(feedRows, period: p).write(to: dir.appendingPathComponent("drop/claims-\(p).csv"), atomically: true, encoding: .utf8) }
        let store = try SQLiteStore(path: dir.appendingPathComponent("hub.sqlite").path)
        let daemon = Daemon(store: store, mappingsDirectory: m, connectors: BuiltinConnectors.registry)
        daemon.reload(force: true)
        return (dir, store, daemon)
    }

    func mapping(version: Int, broken: Bool = false) -> String {
        """
        source: claims
        department: 测试医保局
        connector: file
        fetch: { path: "../drop/claims-{period}.csv" }
        format: csv
        schedule: monthly on day 3 at 02:00
        expect: { due_day: 5, min_rows: 3 }
        record: medical_claim
        fields:
          settlement_id: 结算ID
          id_number: \(broken ? "身份证号码（错）" : "身份证号")
          settled_at: 结算时间
          total_cost: 医疗费总额
          hospital: { value: "版本\(version)" }
        \(broken ? "keep_if: \"total_cost >\"" : "")
        """
    }

    func feed(_ n: Int, period: String) -> String {
        "结算ID,身份证号,结算时间,医疗费总额\n" + (0..<n).map { "\(period)-\($0),\(makeID("411081", "19600101", $0 + 1)),\(period)-01 10:00:00,60000" }.joined(separator: "\n")
    }

    @Test func dueSlotsRunOnceAndMissedSlotsOnce() throws {
        let (_, store, daemon) = try setup()
        // Before the first slot of the month nothing is owed for November yet, but October's slot is.
        try daemon.tick(now: cst(2026, 10, 10), environment: [:])
        #expect(try store.runs(source: "claims", limit: 10).map(\.period) == ["2026-09"])
        try daemon.tick(now: cst(2026, 10, 20), environment: [:])
        #expect(try store.runs(source: "claims", limit: 10).count == 1)          // same slot: no second run
        // The server was off over two slots: one run for the latest.
        try daemon.tick(now: cst(2026, 12, 10), environment: [:])
        let runs = try store.runs(source: "claims", limit: 10)
        #expect(runs.map(\.period) == ["2026-11", "2026-09"])
    }

    /// The daemon driven by a clock it does not own: the server is off over three monthly slots
    /// (November, December, January); when it is back it pulls once, for the latest slot, and
    /// ticking on does not pull again until the next slot.
    @Test func aGapOfThreeSlotsRunsOnceNotOncePerSlot() throws {
        let (dir, store, daemon) = try setup()
        for p in ["2026-12"] { try feed(5, period: p).write(to: dir.appendingPathComponent("drop/claims-\(p).csv"), atomically: true, encoding: .utf8) }
        try daemon.tick(now: cst(2026, 10, 4), environment: [:])
        #expect(try store.runs(source: "claims", limit: 10).map(\.period) == ["2026-09"])
        // Off from October 4 to January 10: the slots of November 3, December 3 and January 3 pass.
        for day in [10, 11, 12] { try daemon.tick(now: cst(2027, 1, day), environment: [:]) }
        let runs = try store.runs(source: "claims", limit: 10)
        #expect(runs.map(\.period) == ["2026-12", "2026-09"], "one run for the latest slot (January 3 pulls December): \(runs.map(\.period))")
        #expect(runs.allSatisfy { $0.status == .succeeded })
    }

    /// A department that publishes late: the daemon looks again every hour until the due day
    /// (plus a day of grace) has passed, then raises a late-delivery alert and looks daily — and
    /// pulls as soon as the file is there, in the same month.
    @Test func aLateDeliveryIsWaitedForNotSkipped() throws {
        let (dir, store, daemon) = try setup()
        let november = dir.appendingPathComponent("drop/claims-2026-11.csv")
        let held = try String(contentsOf: november, encoding: .utf8)
        try FileManager.default.removeItem(at: november)
        try daemon.tick(now: cst(2026, 11, 4), environment: [:])                  // October arrives on time
        // Each look at the feed leaves one "not delivered" run for the period, dated by the look.
        func looks() throws -> [String] {
            try store.runs(source: "claims", limit: 100).filter { $0.period == "2026-11" }.map { "\($0.status.rawValue)@\($0.startedAt.prefix(16))" }
        }
        // December 3, 02:00 slot: November's file is not there. Looked for again hourly, not more often.
        try daemon.tick(now: cst(2026, 12, 3, 3), environment: [:])
        try daemon.tick(now: cst(2026, 12, 3, 3) + 1800, environment: [:])
        #expect(try looks() == ["not_delivered@2026-12-03T03:00"])
        try daemon.tick(now: cst(2026, 12, 3, 4) + 60, environment: [:])
        #expect(try looks() == ["not_delivered@2026-12-03T04:01"], "looked again an hour later; still one row")
        #expect(try store.feedAlerts().filter { $0.kind == "late" && $0.period == "2026-11" }.isEmpty, "not late before the due day")
        // Past the due day (5th) and the day of grace: late, and looked for daily.
        try daemon.tick(now: cst(2026, 12, 7, 9), environment: [:])
        #expect(try store.feedAlerts().contains { $0.kind == "late" && $0.period == "2026-11" && $0.message.contains("逾期未送达") })
        let afterLate = try looks()
        try daemon.tick(now: cst(2026, 12, 7, 15), environment: [:])
        #expect(try looks() == afterLate, "daily now, not hourly")
        // It arrives on the 8th: pulled at the next look, in December, for November.
        try held.write(to: november, atomically: true, encoding: .utf8)
        try daemon.tick(now: cst(2026, 12, 8, 10), environment: [:])
        let runs = try store.runs(source: "claims", limit: 100)
        #expect(runs.first?.period == "2026-11" && runs.first?.status == .succeeded, "\(runs.map { ($0.period, $0.status) })")
        #expect(try store.recordCount(of: shippedTypes["medical_claim"]!, source: "claims") == 10)
    }

    /// Gives a rewritten file a modification time of its own (instead of waiting out the
    /// file system's timestamp resolution).
    func touch(_ url: URL, _ seconds: Double) throws {
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(seconds)], ofItemAtPath: url.path)
    }

    @Test func aBrokenMappingIsRefusedAndThePreviousOneKeepsPulling() throws {
        let (dir, store, daemon) = try setup()
        let file = dir.appendingPathComponent("Mappings/claims.yaml")
        let before = daemon.mappings["claims.yaml"]!.version
        try mapping(version: 2, broken: true).write(to: file, atomically: true, encoding: .utf8)
        try touch(file, 10)
        daemon.reload()
        #expect(daemon.problems["claims.yaml"]?.isEmpty == false)
        #expect(daemon.problems["claims.yaml"]!.map(\.description).contains { $0.contains("claims.yaml:15:") && $0.contains("keep_if") })
        #expect(daemon.mappings["claims.yaml"]?.version == before)
        try daemon.tick(now: cst(2026, 11, 10), environment: [:])
        let stored = try store.records(of: shippedTypes["medical_claim"]!, source: "claims")
        #expect(stored.count == 5 && stored.allSatisfy { $0["hospital"] == .text("版本1") })
        // A good new version replaces it.
        try mapping(version: 3).write(to: file, atomically: true, encoding: .utf8)
        try touch(file, 20)
        daemon.reload()
        #expect(daemon.problems["claims.yaml"] == nil)
        #expect(daemon.mappings["claims.yaml"]?.version != before)
    }

    @Test func brokenParametersKeepTheLastGoodRulesRunning() throws {
        let (dir, _, daemon) = try setup()
        let rules = dir.appendingPathComponent("Mappings/rules")
        try "params:\n  income_threshold: { by_year: { 2026: 7000 } }\n".write(to: rules.appendingPathComponent("params.yaml"), atomically: true, encoding: .utf8)
        try "rule: below\nsubject: household\nwhen: \"household.income_per_person < income_threshold\"\nmessage: m\n"
            .write(to: rules.appendingPathComponent("below.yaml"), atomically: true, encoding: .utf8)
        daemon.reload(force: true)
        #expect(daemon.rules.map(\.name) == ["below"] && daemon.problems["rules"] == nil)
        try "params:\n  income_threshold: { by_year: { 二〇二六: seven } }\n".write(to: rules.appendingPathComponent("params.yaml"), atomically: true, encoding: .utf8)
        daemon.reload(force: true)
        #expect(daemon.problems["rules"]?.isEmpty == false)
        #expect(daemon.rules.map(\.name) == ["below"])
        #expect(daemon.params.value("income_threshold", year: 2026) == 7000)
    }

    @Test func lateEmptyAndShrunkenDeliveriesRaiseOperatorAlerts() throws {
        let (dir, store, daemon) = try setup()
        try daemon.tick(now: cst(2026, 11, 4), environment: [:])          // October delivered in time
        #expect(try store.feedAlerts().isEmpty)
        // November's file never arrives: after the due day it is late (and the pull itself fails, retried).
        try FileManager.default.removeItem(at: dir.appendingPathComponent("drop/claims-2026-11.csv"))
        try daemon.tick(now: cst(2026, 12, 6), environment: [:])
        let late = try store.feedAlerts()
        #expect(late.contains { $0.kind == "late" && $0.period == "2026-11" && $0.message.contains("测试医保局") })
        // December arrives empty.
        try "结算ID,身份证号,结算时间,医疗费总额\n".write(to: dir.appendingPathComponent("drop/claims-2026-12.csv"), atomically: true, encoding: .utf8)
        try daemon.tick(now: cst(2027, 1, 4), environment: [:])
        #expect(try store.feedAlerts().contains { $0.kind == "empty" && $0.period == "2026-12" })
    }

    @Test func aDeliveryThatContradictsItselfRaisesADataQualityAlert() throws {
        let (dir, store, daemon) = try setup()
        // October's file lists one settlement twice with different amounts.
        let rows = feed(4, period: "2026-10") + "\n2026-10-1,\(makeID("411081", "19600101", 2)),2026-10-01 10:00:00,99999\n"
        try rows.write(to: dir.appendingPathComponent("drop/claims-2026-10.csv"), atomically: true, encoding: .utf8)
        try daemon.tick(now: cst(2026, 11, 4), environment: [:])
        let alerts = try store.feedAlerts().filter { $0.kind == "conflict" }
        #expect(alerts.count == 1 && alerts[0].period == "2026-10" && alerts[0].message.contains("医保结算记录 1 行（如 2026-10-1）"), "\(alerts.map(\.message))")
    }
}
